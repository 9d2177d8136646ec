"""Faults a trainer meets: SIGKILL at any instant (mid-checkpoint-write included), a full disk or
a read-only folder during a save, a writer killed mid-line. Nothing saved is lost, the message
says what happened, and a resumed run ends exactly where an uninterrupted one does.

The kill harness is bench/reliability.py's (the long soak runs it >= 20 times); here three
kills, one per kind of moment, against the session's uninterrupted micro run.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import engine.model.checkpoint as ck
from engine.progress.events import EventWriter, read_events
from engine.run import STAGE_FOLDERS

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("reliability", ROOT / "bench/reliability.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["reliability"] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_killed_three_times_the_run_ends_bit_for_bit_like_an_unkilled_one(micro_run, tmp_path):
    rel = _bench()
    kills = [rel.Kill("step", "pretrain", 14, 0.01),  # between checkpoints: steps are redone
             rel.Kill("save", "sft", 0, 0.02),  # inside a checkpoint write or its swap
             rel.Kill("step", "rl", 2, 0.0)]
    result = rel.soak(kills, 0, tmp_path, micro_run)
    assert result["failures"] == [] and result["trainer_crashes"] == 0
    assert result["kills_tried"] == result["kills_survived"] == 3  # every file loaded after each
    # the save kill was seen to land inside the swap (a step kill may land in one too)
    assert result["kills_mid_save"] >= 1
    assert result["resumes"] == 3 and result["resumes_exact"] == result["resumes_checked"] >= 2
    assert result["weights_equal"] == dict.fromkeys(STAGE_FOLDERS, True)  # rlhf's peak too
    assert result["events_problems"] == []  # the folded curves: no step lost, none twice
    events = read_events(tmp_path / "victim" / "events.jsonl")
    resumed = [e for e in events if e["type"] == "stage_start" and e.get("resumed")]
    assert [(e["stage"], e["step"]) for e in resumed][:1] == [("pretrain", 10)]  # its checkpoint


def _disk_full_at(step: int, monkeypatch) -> None:
    """model.safetensors writes fail with ENOSPC from the checkpoint at ``step`` on."""
    real = ck._write_synced
    saves = {"n": 0}

    def write(path: Path, data: bytes) -> None:
        if path.name == "model.safetensors":
            saves["n"] += 1
        if saves["n"] >= step:
            with open(path, "wb") as f:
                f.write(data[: len(data) // 3])  # what fit before the disk filled
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(ck, "_write_synced", write)


def test_disk_full_keeps_the_last_checkpoint_and_says_so(micro_run, tmp_path, monkeypatch):
    from deepdive.cli import app

    run = tmp_path / "full"
    _disk_full_at(2, monkeypatch)  # pretrain saves at steps 10, 20: the second one fails
    got = CliRunner().invoke(app, ["train", "--preset", "micro", "--run", str(run),
                                   "--device", "cpu", "--quiet", "--stages",
                                   "tokenizer,pretrain"])
    assert got.exit_code == 2 and "Traceback" not in got.output
    said = " ".join(got.output.split())
    assert "No space left on device" in said and "step 20" in said and "intact" in said
    meta = json.loads((run / "base" / "meta.json").read_text())
    assert meta["step"] == 10 and not meta["done"]  # the previous checkpoint, whole
    ck.load_checkpoint(run / "base")
    assert not list(run.glob(".base.*"))  # no half-written folder left behind
    events = read_events(run / "events.jsonl")
    error = [e for e in events if e["type"] == "error"][-1]
    assert error["step"] == 20 and error["last_checkpoint"] == str(run / "base")
    assert events[-1]["type"] == "run_end" and events[-1]["error"]

    monkeypatch.undo()  # space again: the resume finishes exactly as an unbroken run does
    from engine.train.pipeline import train

    train(run, stages="tokenizer,pretrain", resume=True, device="cpu")
    mine, ref = ck.load_checkpoint(run / "base")[0], ck.load_checkpoint(micro_run / "base")[0]
    assert all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(),
                                                 ref.state_dict().values(), strict=True))


def test_a_rename_refused_mid_swap_puts_the_old_checkpoint_back(tmp_path, monkeypatch):
    from engine.model.gpt import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=1, n_head=2, n_embd=8))
    ck.save_checkpoint(tmp_path / "sft", model, {"step": 1})

    class RefuseNewIntoPlace:  # stage -> .old works; .new -> stage is refused
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def replace(src, dst):
            if Path(src).name.startswith(".sft.new-"):
                raise OSError(errno.EROFS, "Read-only file system", str(dst))
            os.replace(src, dst)

    monkeypatch.setattr(ck, "os", RefuseNewIntoPlace())
    with pytest.raises(ck.CheckpointError, match="Read-only file system.*intact"):
        ck.save_checkpoint(tmp_path / "sft", model, {"step": 2})
    monkeypatch.undo()
    assert ck.load_checkpoint(tmp_path / "sft")[1]["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sft"]  # nothing half-swapped


def test_events_after_a_writer_killed_mid_line_stay_readable(tmp_path):
    first = EventWriter(tmp_path)
    first.emit("step", stage="pretrain", step=1)
    with open(tmp_path / "events.jsonl", "a", encoding="utf-8") as f:
        f.write('{"t": 1.0, "type": "step", "sta')  # the kill came mid-append
    EventWriter(tmp_path).emit("run_start", resumed=True)  # the resumed trainer
    events = read_events(tmp_path / "events.jsonl")
    assert [e["type"] for e in events] == ["step", "run_start"]


def test_a_damaged_checkpoint_stops_a_resume_and_is_not_deleted(micro_run, tmp_path):
    """A meta.json that does not parse is not "no checkpoint": --resume names it and keeps
    the folder, instead of deleting the stage and retraining it silently."""
    import shutil

    from deepdive.cli import app

    run = tmp_path / "damaged"
    shutil.copytree(micro_run, run, ignore=shutil.ignore_patterns("train.lock"))
    meta = run / "rl" / "meta.json"
    meta.write_text(meta.read_text()[:40])
    got = CliRunner().invoke(app, ["train", "--run", str(run), "--resume", "--device", "cpu",
                                   "--quiet"])
    assert got.exit_code == 2 and "Traceback" not in got.output
    said = " ".join(got.output.split())  # the console wraps long paths: compare unwrapped
    assert "rl/meta.json" in "".join(said.split()) and "not valid JSON" in said
    assert (run / "rl" / "model.safetensors").exists() and meta.read_text().startswith("{")


def test_resume_reads_absent_checkpoints_as_none_and_damaged_ones_as_errors(micro_run, tmp_path):
    import shutil

    from engine.model.checkpoint import CheckpointError
    from engine.train.loop import finished_meta, unfinished_meta

    assert finished_meta(tmp_path / "sft", "sft") is None  # a stage not reached yet
    assert unfinished_meta(tmp_path / "sft", "sft") is None
    shutil.copytree(micro_run / "sft", tmp_path / ".sft.old-123")  # a save killed mid-swap
    assert finished_meta(tmp_path / "sft", "sft")["done"]
    (tmp_path / ".sft.old-123" / "meta.json").write_text("{")
    with pytest.raises(CheckpointError, match="meta.json"):
        finished_meta(tmp_path / "sft", "sft")
