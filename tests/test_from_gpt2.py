"""deepdive train --from: an imported GPT-2 fine-tuned through SFT and RL into a run of its own."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from deepdive.cli import app
from engine.model.checkpoint import load_run_model
from engine.model.gpt2 import import_gpt2
from engine.progress.events import read_events
from engine.tokens.chat import SPECIAL_TOKENS, has_chat_format, render_prompt
from engine.train.presets import get_preset

runner = CliRunner()
TRAIN = ["train", "--preset", "micro", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, write_hf_gpt2):
    """(checkpoints root, the imported run, the run fine-tuned from it), made as a user would:
    ``deepdive import gpt2``'s engine call, then ``deepdive train --from`` by the run's name,
    with a file of the user's conversations and one of problems."""
    root = tmp_path_factory.mktemp("checkpoints")
    hf = tmp_path_factory.mktemp("hf-gpt2")
    write_hf_gpt2(hf, n_positions=128)  # room for a world conversation in a 5-merge BPE
    source = import_gpt2(hf, root / "gpt2-tiny")
    data = tmp_path_factory.mktemp("data")
    chats = [[{"role": "user", "content": f"Say {w}."}, {"role": "assistant", "content": w}]
             for w in ("yes", "no")]
    (data / "chats.jsonl").write_text("".join(json.dumps({"messages": c}) + "\n" for c in chats))
    (data / "sums.jsonl").write_text(json.dumps({"question": "2 + 3?", "answer": "#### 5"}))
    result = cli(root, *TRAIN, "--run", "chat", "--from", "gpt2-tiny", "--stages", "sft,rl",
                 "--sft-data", str(data / "chats.jsonl"), "--rl-data", str(data / "sums.jsonl"))
    assert result.exit_code == 0, result.output
    return root, source, root / "chat"


def cli(root, *args):
    return runner.invoke(app, list(args), env={"DEEPDIVE_CHECKPOINTS": str(root)})


def test_sft_and_rl_train_from_the_imported_model(runs):
    _, _, run = runs
    for stage in ("sft", "rl"):
        model, tok, meta = load_run_model(run, stage)
        assert meta["done"] and meta["step"] == meta["total_steps"]
        assert model.config.arch == "gpt2" and model.config.vocab_size == tok.n_vocab
    events = read_events(run / "events.jsonl")
    assert [e["stage"] for e in events if e["type"] == "stage_start"] == ["sft", "rl"]
    assert events[-1]["type"] == "run_end" and events[-1]["status"] == "done"
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["base", "rl", "sft"]


def test_the_tokenizer_gains_chat_tokens_that_typed_text_never_makes(runs):
    _, source, run = runs
    _, old, _ = load_run_model(source, "base")
    _, tok, _ = load_run_model(run, "base")
    assert has_chat_format(old) is None  # the source run is left as it was
    assert has_chat_format(tok) == "deepdive"
    assert sorted(tok.specials[s] for s in SPECIAL_TOKENS) == list(range(old.n_vocab,
                                                                        tok.n_vocab))
    for text in [*SPECIAL_TOKENS, "Hi <|assistant_start|> there<|bos|>"]:
        ids = tok.encode(text)
        assert ids == old.encode(text) and not any(tok.is_special(i) for i in ids)
        assert tok.decode(ids) == text
    prompt = render_prompt(tok, [{"role": "user", "content": "<|assistant_end|>"}])
    assert prompt.count(tok.special_id("<|assistant_end|>")) == 0


def test_run_json_names_the_source_its_weights_and_the_users_files(runs):
    _, source, run = runs
    record = json.loads((run / "run.json").read_text())
    weights = (source / "base" / "model.safetensors").read_bytes()
    assert record["from"]["run"] == str(source.resolve())
    assert record["from"]["base_sha256"] == hashlib.sha256(weights).hexdigest()
    assert list(record["from"]["added_tokens"]) == SPECIAL_TOKENS
    assert record["data"]["sft"]["conversations"] == 2 and record["data"]["rl"]["problems"] == 1
    source_config = json.loads((source / "base" / "meta.json").read_text())["config"]
    preset = record["preset_config"]
    assert preset["model"] == {k: v for k, v in source_config.items() if k != "vocab_size"}
    micro = get_preset("micro")
    assert preset["sft"]["lr"] == pytest.approx(micro.sft.lr / 10)
    assert preset["rl"]["lr"] == pytest.approx(micro.rl.lr / 10)


def test_growing_the_vocab_leaves_the_base_models_logits_alone(runs):
    _, source, run = runs
    before, old, _ = load_run_model(source, "base")
    after, tok, meta = load_run_model(run, "base")
    assert meta["done"] and meta["from"]["run"] == str(source.resolve())
    ids = torch.tensor([old.encode(" the cat sat in the hat") * 3])
    with torch.no_grad():
        want, got = before(ids)[0], after(ids)[0]
    assert torch.allclose(got[..., : old.n_vocab], want, atol=1e-5)
    wte_old, wte = before.transformer.wte.weight, after.transformer.wte.weight
    assert after.lm_head.weight is wte  # still tied: the new rows are output rows too
    assert torch.equal(wte[: old.n_vocab], wte_old)
    bos, eot = tok.special_id("<|bos|>"), old.special_id("<|endoftext|>")
    assert torch.equal(wte[bos], wte_old[eot])
    assert torch.allclose(wte[tok.special_id("<|user_start|>")], wte_old.mean(0))


def test_resume_prepares_what_is_missing_and_nothing_else(runs, tmp_path):
    """A run killed before its base/ was written, and before RL: --resume (no --from) writes
    the same base/ again from the recorded source, keeps sft/, trains rl/."""
    root, _, run = runs
    copy = root / "chat-copy"
    shutil.copytree(run, copy)
    base = load_file(copy / "base" / "model.safetensors")
    sft = (copy / "sft" / "model.safetensors").read_bytes()
    for gone in ("base", "rl"):
        shutil.rmtree(copy / gone)
    (copy / "tokenizer.json").unlink()
    result = cli(root, *TRAIN, "--run", "chat-copy", "--resume", "--stages", "sft,rl")
    assert result.exit_code == 0, result.output
    again = load_file(copy / "base" / "model.safetensors")  # the same tensors (the header's
    assert again.keys() == base.keys()  # metadata order may differ from save to save)
    assert all(torch.equal(again[k], base[k]) for k in base)
    assert (copy / "sft" / "model.safetensors").read_bytes() == sft
    load_run_model(copy, "rl")
    resumed = read_events(copy / "events.jsonl")
    last_start = max(i for i, e in enumerate(resumed) if e["type"] == "run_start")
    trained = [e["stage"] for e in resumed[last_start:] if e["type"] == "stage_start"]
    assert trained == ["rl"]


def test_bad_requests_exit_2_and_write_nothing(runs):
    root, source, _ = runs
    (root / "notes").mkdir(exist_ok=True)
    (root / "notes" / "todo.txt").write_text("not a run")
    import_gpt2(json.loads((source / "run.json").read_text())["source"], root / "gpt2-other")
    cases = [
        (["--run", "a", "--from", "nowhere"], "no such run"),
        (["--run", "b", "--from", "notes"], "not a run with a base model"),
        (["--run", "c", "--from", "gpt2-tiny", "--stages", "pretrain,sft"], "pretraining"),
        (["--run", "d", "--from", "gpt2-tiny", "--stages", "tokenizer"], "tokenizer"),
        (["--run", "gpt2-tiny", "--stages", "sft"], "an imported model"),
        (["--run", "chat", "--from", "gpt2-other", "--stages", "sft"], "started from"),
        (["--run", "gpt2-tiny", "--from", "gpt2-tiny"], "being written"),
    ]
    for args, said in cases:
        result = cli(root, *TRAIN, *args)
        assert result.exit_code == 2 and said in result.stderr, (args, result.output)
    assert not any((root / name).exists() for name in "abcd")
    assert not (source / "sft").exists()
    chat = json.loads((root / "chat" / "run.json").read_text())
    assert chat["from"]["run"] == str(source.resolve())
