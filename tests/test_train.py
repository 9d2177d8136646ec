"""The shared training loop and the stage trainers: masks, schedule, batches, NaN, the lock."""

from __future__ import annotations

import json

import pytest
import torch

from engine.progress.events import read_events
from engine.train.distributed import DistInfo
from engine.train.loop import lr_at
from engine.train.presets import StageConfig, get_preset


@pytest.fixture(scope="module")
def tok(micro_run):
    from engine.tokens.tokenizer import Tokenizer

    return Tokenizer.load(micro_run / "tokenizer.json")


def test_sft_batch_targets_only_assistant_tokens(tok):
    from engine.tokens.chat import render_conversation
    from engine.train.sft import collate, encode_conversations

    conv = [{"role": "user", "content": "What is 2+3?"},
            {"role": "assistant", "content": "2+3=5. The answer is 5."},
            {"role": "user", "content": "And 1+1?"},
            {"role": "assistant", "content": "2"}]
    short = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    rows = encode_conversations(tok, [conv, short], max_len=200)
    x, y = collate(rows)
    ids, mask = render_conversation(tok, conv)
    assert x[0, : len(ids) - 1].tolist() == ids[:-1]
    for i in range(len(ids) - 1):
        assert y[0, i].item() == (ids[i + 1] if mask[i + 1] else -1)
    end = tok.special_id("<|assistant_end|>")
    learned = [t for t in y[0].tolist() if t != -1]
    # what is learned: both assistant replies and their end markers, nothing the user said
    assert tok.decode(learned) == tok.decode(
        tok.encode("2+3=5. The answer is 5.") + [end] + tok.encode("2") + [end])
    assert "What" not in tok.decode(learned)
    # the short row is padded: its targets past the conversation are all ignored
    n_short = len(rows[1][0]) - 1
    assert (y[1, n_short:] == -1).all() and y.shape[1] == len(ids) - 1


def test_lr_schedule_warms_up_then_decays_to_floor():
    cfg = StageConfig(steps=100, batch_size=1, seq_len=8, lr=1.0, warmup=10, min_lr_frac=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(99, cfg) < 0.12 and lr_at(99, cfg) >= 0.1
    lrs = [lr_at(s, cfg) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))
    lin = StageConfig(steps=10, batch_size=1, seq_len=8, lr=1.0, decay="linear", min_lr_frac=0.0)
    assert lr_at(5, lin) == pytest.approx(0.5)


def test_pretrain_batches_depend_on_seed_and_step_and_shard_by_rank(tok):
    from engine.train.pretrain import PretrainTask

    docs = [f"document number {i} says {i * 7} things about cats." for i in range(200)]
    cfg = StageConfig(steps=10, batch_size=4, seq_len=16, lr=1e-3)

    def task(seed, dist=None):
        return PretrainTask(tok, docs, cfg, seed, 0.1, torch.device("cpu"), dist)

    a, b = task(0), task(0)
    assert torch.equal(a.batch(3)[0], b.batch(3)[0])  # a resumed run sees the same batch
    assert not torch.equal(a.batch(3)[0], a.batch(4)[0])
    assert not torch.equal(a.batch(3)[0], task(1).batch(3)[0])
    x, y = a.batch(5)
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
    halves = [task(0, DistInfo(rank=r, world_size=2)).batch(5)[0] for r in (0, 1)]
    assert torch.equal(torch.cat(halves), x)  # two ranks together hold the one global batch


def test_nan_loss_stops_with_error_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    from engine.model.checkpoint import load_checkpoint
    from engine.train.loop import TrainingError
    from engine.train.pipeline import train

    monkeypatch.setenv("DEEPDIVE_TEST_NAN", "pretrain:14")  # after the checkpoint at step 10
    run = tmp_path / "nan"
    with pytest.raises(TrainingError, match="loss became nan at step 15"):
        train(run, preset="micro", stages="tokenizer,pretrain", device="cpu")
    events = read_events(run / "events.jsonl")
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1 and errors[0]["stage"] == "pretrain" and errors[0]["step"] == 15
    assert errors[0]["last_checkpoint"] == str(run / "base")
    assert events[-1]["type"] == "run_end" and events[-1]["status"] == "stopped"
    model, meta = load_checkpoint(run / "base")  # the last good checkpoint, intact
    assert meta["step"] == 10 and not meta["done"]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not [e for e in events if e["type"] == "step" and e.get("step", 0) > 14]


def test_second_trainer_on_a_run_is_refused(tmp_path):
    from engine.run import RunLock, RunLockedError
    from engine.train.pipeline import train

    run = tmp_path / "locked"
    with RunLock(run), pytest.raises(RunLockedError, match="another trainer"):
        train(run, preset="micro", stages="tokenizer", device="cpu")
    assert not (run / "run.json").exists()  # the refused trainer wrote nothing


def test_cli_refuses_second_trainer_and_bad_stage(tmp_path):
    from typer.testing import CliRunner

    from deepdive.cli import app
    from engine.run import RunLock

    runner = CliRunner()
    run = tmp_path / "busy"
    with RunLock(run):
        res = runner.invoke(app, ["train", "--preset", "micro", "--run", str(run), "--quiet"])
    assert res.exit_code == 2 and "another trainer" in res.output
    res = runner.invoke(app, ["train", "--stages", "pretrain,dance", "--run", str(tmp_path / "x")])
    assert res.exit_code == 2 and "dance" in res.output
    res = runner.invoke(app, ["train", "--preset", "huge", "--run", str(tmp_path / "y")])
    assert res.exit_code == 2 and "unknown preset" in res.output


def test_presets_are_complete_and_micro_is_small():
    from engine.train.presets import PRESETS, preset_from_dict

    assert {"micro", "tiny", "small", "medium"} <= set(PRESETS)
    for name in PRESETS:
        p = get_preset(name)
        assert p.rl.group >= 2 and p.pretrain.steps > 0 and p.sft.steps > 0
        assert preset_from_dict(json.loads(json.dumps(p.to_dict()))) == p  # run.json round trip
    micro = get_preset("micro")
    assert micro.model["n_layer"] <= 2 and micro.pretrain.steps <= 50
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("huge")


def test_policy_gradient_pushes_up_better_answers_and_down_worse(tok):
    from engine.model.gpt import GPT, GPTConfig
    from engine.train.presets import RLConfig
    from engine.train.rl import RlTask

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.n_vocab, block_size=64, n_layer=1, n_head=2, n_embd=32))
    task = RlTask(tok, [object()], [], RLConfig(steps=1, batch_size=1, seq_len=64, lr=1e-2),
                  0, torch.device("cpu"))
    prompt = tok.encode("What is 2+3?")
    good, bad = tok.encode("5."), tok.encode("7!")

    def logp(resp):
        with torch.no_grad():
            logits, _ = model(torch.tensor([prompt + resp[:-1]]))
            lp = torch.log_softmax(logits[0, len(prompt) - 1:], -1)
            return float(lp[torch.arange(len(resp)), torch.tensor(resp)].sum())

    before = logp(good), logp(bad)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss = task._pg_loss(model, [prompt, prompt], [good, bad], torch.tensor([0.5, -0.5]),
                         len(good) + len(bad))
    loss.backward()
    opt.step()
    assert logp(good) > before[0] and logp(bad) < before[1]


def test_val_documents_are_never_trained_on_even_when_texts_repeat():
    from engine.train.pretrain import split_documents

    docs = [f"entry {i}" for i in range(40)] * 3 + [f"story {i}" for i in range(60)]
    train, val = split_documents(docs, 0.1, seed=0)
    assert val and not set(val) & set(train)
    assert len(train) + 3 * sum(d.startswith("entry") for d in val) + sum(
        d.startswith("story") for d in val) == len(docs)  # every copy kept, on one side
    assert split_documents(docs, 0.1, seed=0) == (train, val)


def test_sft_rehearsal_mixes_documents_into_training_rows_only(tok):
    from engine.data.world import build_world, pretrain_documents, sft_conversations
    from engine.tokens.chat import render_document
    from engine.train.sft import SftTask

    world = build_world(0)
    convs, docs = sft_conversations(world, n=100), pretrain_documents(world)
    cfg = get_preset("micro").sft
    plain = SftTask(tok, convs, cfg, 0, 0.1, torch.device("cpu"))
    mixed = SftTask(tok, convs, cfg, 0, 0.1, torch.device("cpu"), documents=docs, doc_frac=0.25)
    extra = mixed.train[len(plain.train):]
    assert mixed.train[: len(plain.train)] == plain.train and mixed.val == plain.val
    assert len(extra) == round(len(plain.train) / 3)  # a quarter of all training rows
    ids, mask = extra[0]
    assert ids == render_document(tok, docs[0])[: cfg.seq_len + 1]
    assert mask == [0] + [1] * (len(ids) - 1)  # the whole document is learned, not its <|bos|>
    rows = [r for step in range(40) for r in mixed.global_rows(step)]
    assert any(r in extra for r in rows) and any(r not in extra for r in rows)


def test_sft_does_not_train_on_names_copied_from_the_question(tok):
    from engine.tokens.chat import render_conversation
    from engine.train.sft import collate, encode_conversations

    conv = [{"role": "user", "content": "When was Zorblax born?"},
            {"role": "assistant", "content": "I don't know who Zorblax is. Ask about Orvis."}]
    (row,) = encode_conversations(tok, [conv], max_len=200)
    _, y = collate([row])
    learned = tok.decode([t for t in y[0].tolist() if t != -1])
    assert "Zorblax" not in learned  # copied: pretraining's to do
    assert "I don't know who" in learned and "is. Ask about Orvis." in learned  # the rest is
    assert sum(row[1]) < sum(render_conversation(tok, conv)[1])
    # where the names' rows stay untrained, the copy itself is what SFT learns
    (row,) = encode_conversations(tok, [conv], max_len=200, learn_copies=True)
    learned = tok.decode([t for t in collate([row])[1][0].tolist() if t != -1])
    assert "I don't know who Zorblax is." in learned
    assert row[1] == render_conversation(tok, conv)[1]


def test_the_tiny_preset_learns_the_names_its_replies_copy(micro_run):
    """The pipeline's SFT and control rows (train and val) train on copied names exactly when
    the preset says so (the tiny preset); micro and runs started --from another model mask them."""
    import dataclasses

    from engine.data.world import build_world
    from engine.model.device import pick_device
    from engine.tokens.tokenizer import Tokenizer
    from engine.train.distributed import DistInfo
    from engine.train.from_run import derived_preset
    from engine.train.pipeline import _sft_task
    from engine.train.presets import get_preset
    from engine.train.user_data import UserData

    tok = Tokenizer.load(micro_run / "tokenizer.json")
    world = build_world(0)
    micro = dataclasses.replace(get_preset("micro"), probe_samples=0)
    tiny = get_preset("tiny")
    assert tiny.sft_learn_copies and not micro.sft_learn_copies
    gpt2 = derived_preset(tiny, {**tiny.model, "vocab_size": 50257}, 50257, micro_run)
    assert not gpt2.sft_learn_copies
    for stage in ("sft", "control"):
        trained = {}
        for learn in (False, True):
            p = dataclasses.replace(micro, sft_learn_copies=learn)
            task = _sft_task(stage, p, world, tok, p.sft, 0, pick_device("cpu"), DistInfo(),
                             micro_run, UserData())
            trained[learn] = [sum(sum(m) for _, m in rows) for rows in (task.train, task.val)]
        assert all(a < b for a, b in zip(trained[False], trained[True], strict=True)), stage


def test_sft_leaves_name_rows_untrained_and_trains_the_rest():
    from engine.data.world import build_world
    from engine.model.gpt import GPT, GPTConfig
    from engine.run import RunFolder
    from engine.tokens.tokenizer import get_encoding
    from engine.train.sft import leave_rows_untrained, name_token_ids

    tok = get_encoding(str(RunFolder.of("tiny").tokenizer))
    world = build_world(0)
    ids = name_token_ids(tok, world)
    # every held-out (test) person's name is covered, bare and after a space
    for name in world.entities("test"):
        assert set(tok.encode(" " + name)) <= set(ids), name
    assert 0 < len(ids) < tok.n_vocab
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.n_vocab, block_size=16, n_layer=1, n_head=2, n_embd=16))
    leave_rows_untrained(model, ids)
    before = model.transformer.wte.weight.detach().clone()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    x = torch.randint(0, tok.n_vocab, (4, 16))
    _, loss = model(x, x)
    loss.backward()
    opt.step()
    after = model.transformer.wte.weight.detach()
    moved = (after - before).abs().sum(dim=1) > 0
    assert not moved[ids].any()  # the names' rows are where pretraining left them
    rest = torch.ones(tok.n_vocab, dtype=torch.bool)
    rest[ids] = False
    assert moved[rest].all()  # every other row trains (each gets the softmax's gradient)
