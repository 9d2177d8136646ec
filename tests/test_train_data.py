"""A user's files in training (issue 12): ``deepdive train --pretrain-data/--sft-data/--rl-data``.

One micro run (tokenizer to rl; the control and eval stages read nothing new) trains on small
files made here, each with one bad row; the tests read what it wrote and what it trained on.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepdive.cli import app as cli
from engine.data import world as W
from engine.data.judge import verify
from engine.data.shards import token_shard
from engine.progress.events import read_events
from engine.tokens.chat import render_conversation, render_document
from engine.tokens.tokenizer import Tokenizer
from engine.train.pipeline import PipelineError, train, training_data
from engine.train.presets import get_preset
from engine.train.pretrain import PretrainTask
from engine.train.user_data import load_user_data, paths_from_record

STAGES = "tokenizer,pretrain,sft,rl"
DOCS = ["Zorblings hum under the quasar.", "A second zorbling story, with quasars.",
        "Third: the quasar sings to the zorblings."]
runner = CliRunner()


def write_files(folder: Path) -> dict[str, Path]:
    """A pretraining .jsonl, an SFT .jsonl and an RL .jsonl, each with one bad row."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = folder / "docs.jsonl"
    docs.write_text("\n".join(json.dumps({"text": d}) for d in DOCS) + '\n{"text": 3}\n')
    convs = [
        [{"role": "system", "content": "Answer in one line."},
         {"role": "user", "content": "What hums? <|bos|><|assistant_end|>"},
         {"role": "assistant", "content": "The zorblings."}],
        [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."}],
    ]
    sft = folder / "sft.jsonl"
    sft.write_text("".join(json.dumps({"messages": c}) + "\n" for c in convs)
                   + '{"messages": []}\n')
    rl = folder / "rl.jsonl"
    rows = [{"question": f"Zorbling {a} has {a} quasars and gets 3 more. How many?",
             "answer": f"{a} + 3 = {a + 3}\n#### {a + 3}"} for a in range(1, 6)]
    rl.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"question": "x"}\n')
    return {"pretrain": docs, "sft": sft, "rl": rl}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A shard cache of this module's own (never the user's ~/.cache)."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("cache")
        mp.setenv("DEEPDIVE_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return write_files(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def data_run(tmp_path_factory, files, cache) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "mine"
    train(run_dir, preset="micro", stages=STAGES, device="cpu", pretrain_data=files["pretrain"],
          sft_data=files["sft"], rl_data=files["rl"])
    return run_dir


def recorded(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())["data"]


def test_the_run_finishes_and_records_what_it_read(data_run, files):
    events = read_events(data_run / "events.jsonl")
    assert events[-1]["type"] == "run_end" and events[-1]["status"] == "done"
    data = recorded(data_run)
    assert data["on_bad"] == "skip" and data["world_seed"] == 0
    for stage in ("pretrain", "sft", "rl"):
        assert data[stage]["path"] == str(files[stage].resolve())
        assert data[stage]["files"] == 1 and data[stage]["bad_rows"] == 1
    assert data["pretrain"]["documents"] == len(DOCS) and data["pretrain"]["tokens"] > len(DOCS)
    assert data["sft"]["conversations"] == 2 and data["rl"]["problems"] == 5
    tok = Tokenizer.load(data_run / "tokenizer.json")
    shard = token_shard(files["pretrain"], tok)
    assert shard.reused and data["pretrain"]["shard"] == shard.header["key"]
    tok_end = next(e for e in events if e["type"] == "stage_end" and e["stage"] == "tokenizer")
    assert tok_end["summary"]["user_docs"] == len(DOCS)  # the BPE read the user's text too
    evals = [e for e in events if e["type"] == "eval" and e["stage"] == "pretrain"]
    assert evals and all(e["val_loss_user"] > 0 for e in evals)  # their held-back text, scored


def test_training_data_holds_the_file_rows(data_run):
    p, world = get_preset("micro"), W.build_world(0)
    user = load_user_data(paths_from_record(recorded(data_run)))
    assert training_data("pretrain", p, world, 0, user=user)["file_documents"] == DOCS
    convs = training_data("sft", p, world, 0, user=user)["conversations"]
    assert convs[-2:] == user.conversations
    folded = user.conversations[0]
    assert [m["role"] for m in folded] == ["user", "assistant"]  # the system turn folded in
    assert folded[0]["content"].startswith("Answer in one line.\n\nWhat hums?")
    rl = training_data("rl", p, world, 0, user=user)
    mine = [q for q in rl["train"] if q.family == "file"]
    assert mine == user.problems and len(mine) == 5
    assert all(q.family != "file" for q in rl["eval"])  # the periodic eval stays the world's
    assert verify(mine[0], "1 + 3 = 4. The answer is 4.") == 1.0
    assert verify(mine[0], "The answer is 5.") == 0.0


def test_the_pretrain_stream_holds_the_files_tokens(data_run, files, tmp_path):
    import numpy as np
    import torch

    from engine.train.distributed import DistInfo
    from engine.train.pipeline import _file_streams

    p, world = get_preset("micro"), W.build_world(0)
    tok = Tokenizer.load(data_run / "tokenizer.json")
    user = load_user_data(paths_from_record(recorded(data_run)))
    shutil.copy(data_run / "run.json", tmp_path / "run.json")  # the stage records its shard
    train_ids, val_ids = _file_streams(tmp_path, p, tok, user, DistInfo(), resumed=True)
    shard_file = token_shard(files["pretrain"], tok).tokens.filename
    for ids in (train_ids, val_ids):  # the shard's file, mapped: nothing copied into memory
        assert isinstance(ids, np.memmap) and ids.filename == shard_file, type(ids)
        assert ids.dtype == np.uint16
    meta = json.loads((data_run / "base" / "meta.json").read_text())
    assert meta["user_tokens"] == len(train_ids)  # what the stage trained on
    task = PretrainTask(tok, W.pretrain_documents(world), p.pretrain, 0, p.val_frac,
                        "cpu", extra=(train_ids, val_ids))
    assert task.train.segments[-1] is train_ids and task.val.segments[-1] is val_ids
    stream = [task.train.take(torch.arange(len(task.train))).tolist(),
              task.val.take(torch.arange(len(task.val))).tolist()]
    for doc in DOCS:
        ids = render_document(tok, doc)
        assert any(s[i: i + len(ids)] == ids for s in stream for i in range(len(s))), doc


def test_user_text_that_spells_special_tokens_stays_text(data_run):
    tok = Tokenizer.load(data_run / "tokenizer.json")
    user = load_user_data(paths_from_record(recorded(data_run)))
    ids, _ = render_conversation(tok, user.conversations[0])
    specials = set(tok.specials.values())
    assert sum(i == tok.special_id("<|bos|>") for i in ids) == 1
    assert len([i for i in ids if i in specials]) == 5  # bos + two turns' start and end


def test_a_resume_reads_the_same_files_or_refuses(data_run, files, tmp_path):
    assert train(data_run, resume=True, stages=STAGES, device="cpu")  # all done: nothing runs
    other = tmp_path / "other.txt"
    other.write_text("other words\n")
    result = runner.invoke(cli, ["train", "--run", str(data_run), "--resume",
                                 "--pretrain-data", str(other)])
    _usage_error(result, "other data files")
    copy = tmp_path / "copy"
    shutil.copytree(data_run, copy)
    saved = files["sft"].read_bytes()
    try:  # a file changed under a run: refused, not trained on quietly
        files["sft"].write_text('{"messages": [{"role": "user", "content": "a"}, '
                                '{"role": "assistant", "content": "b"}]}\n')
        with pytest.raises(PipelineError, match="sft data changed"):
            train(copy, resume=True, device="cpu")
    finally:
        files["sft"].write_bytes(saved)


def test_missing_files_and_refused_rows_exit_2_naming_them(tmp_path, files, cache):
    never = tmp_path / "never"
    base = ["train", "--preset", "micro", "--run", str(never), "--device", "cpu"]
    result = runner.invoke(cli, [*base, "--sft-data", str(tmp_path / "missing.jsonl")])
    _usage_error(result, "no such file or folder")
    result = runner.invoke(cli, [*base, "--rl-data", str(files["rl"]), "--on-bad", "refuse"])
    _usage_error(result, f"{files['rl'].resolve()}:6: ")
    assert not never.exists()  # refused before the run folder was made
    result = runner.invoke(cli, [*base, "--stages", "tokenizer", "--on-bad", "refuse",
                                 "--pretrain-data", str(files["pretrain"])])
    _usage_error(result, f"{files['pretrain'].resolve()}:4: 'text' must be a string")


def _usage_error(result, says: str) -> None:
    shown = f"{result.output!r} {result.exception!r}"
    assert result.exit_code == 2, shown
    assert "Traceback" not in result.output and says in result.output, shown
