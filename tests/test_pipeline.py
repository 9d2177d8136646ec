"""The whole pipeline on the micro preset: events, checkpoints, report, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.progress.events import read_events
from engine.run import STAGE_NAMES as STAGES

TRAIN_STAGES = ["pretrain", "sft", "rl", "control", "reward", "rlhf"]


def test_micro_run_events_follow_the_pipeline(micro_run):
    events = read_events(micro_run / "events.jsonl")
    assert events[0]["type"] == "run_start" and events[0]["stages"] == list(STAGES)
    assert events[-1] == {**events[-1], "type": "run_end", "status": "done"}
    starts = [e["stage"] for e in events if e["type"] == "stage_start"]
    ends = [e["stage"] for e in events if e["type"] == "stage_end"]
    assert starts == ends == list(STAGES)
    for stage in TRAIN_STAGES:
        steps = [e for e in events if e["type"] == "step" and e["stage"] == stage]
        numbers = [e["step"] for e in steps]
        assert numbers == sorted(set(numbers)) and numbers[0] == 1
        assert numbers[-1] == steps[-1]["total_steps"]
        kinds = {e["type"] for e in events if e.get("stage") == stage}
        samples = {"sample"} if stage != "reward" else set()  # a reward model writes no text
        assert {"eval", "checkpoint"} | samples <= kinds, stage
    rl_steps = [e for e in events if e["type"] == "step" and e["stage"] == "rl"]
    assert all({"reward", "pass1", "resp_len"} <= set(e) for e in rl_steps)
    pre = [e for e in events if e["type"] == "step" and e["stage"] == "pretrain"]
    assert pre[-1]["loss"] < pre[0]["loss"]  # it learned something


def test_micro_run_folder_is_complete_and_loadable(micro_run):
    from engine.model.checkpoint import load_checkpoint, load_run_model

    record = json.loads((micro_run / "run.json").read_text())
    assert record["preset"] == "micro" and record["seed"] == 0 and "torch" in record["versions"]
    for stage in ("base", "sft", "rl"):
        model, tok, meta = load_run_model(micro_run, stage)
        assert meta["done"] and meta["step"] == meta["total_steps"]
        assert model.config.vocab_size >= tok.n_vocab
    _, control = load_checkpoint(micro_run / "sft_control")
    assert control["train_stage"] == "control" and control["done"]
    assert not list(micro_run.rglob("optimizer.safetensors"))  # weights only once finished
    report = json.loads((micro_run / "report.json").read_text())
    assert report["metrics"]


def test_control_spends_the_compute_rl_spent(micro_run):
    from engine.model.checkpoint import read_meta

    rl, sft = read_meta(micro_run / "rl"), read_meta(micro_run / "sft")
    control = read_meta(micro_run / "sft_control")
    per_step = sft["metrics"]["compute"] / sft["metrics"]["steps"]
    assert rl["metrics"]["compute"] > 0 and per_step > 0
    assert control["step"] == max(1, round(rl["metrics"]["compute"] / per_step))
    # matched on compute, not seconds: about RL's, whatever the clock did (at least one step)
    gap = abs(control["metrics"]["compute"] - rl["metrics"]["compute"])
    assert control["step"] == 1 or gap <= per_step
    assert control["matched_on"] == "compute"  # what the report card says it was matched on
    ratio = json.loads((micro_run / "report.json").read_text())["metrics"]["control_compute_ratio"]
    assert ratio == round(control["compute"] / rl["compute"], 3)


def test_the_control_has_the_same_steps_run_to_run(micro_run, tmp_path):
    """Matched on compute, the control is reproducible: RL again from the same SFT, with the
    same seed, gives the control the same number of steps (seconds never would)."""
    import shutil

    from engine.model.checkpoint import read_meta
    from engine.train.pipeline import train

    run = tmp_path / "again"
    run.mkdir()
    for name in ("run.json", "tokenizer.json", "base", "sft"):
        copy = shutil.copytree if (micro_run / name).is_dir() else shutil.copy
        copy(micro_run / name, run / name)
    train(run, stages="rl,control", device="cpu")
    assert read_meta(run / "sft_control")["step"] == read_meta(micro_run / "sft_control")["step"]
    assert read_meta(run / "rl")["compute"] == read_meta(micro_run / "rl")["compute"]


def test_a_run_without_recorded_compute_matches_seconds_and_says_so(micro_run, tmp_path):
    """Stages trained before compute was recorded (or resumed from such a checkpoint) leave the
    control to match RL's seconds; its meta and the report card's reading say so."""
    import shutil

    from engine.model.checkpoint import read_meta
    from engine.train.loop import StageClock, StepResult
    from engine.train.pipeline import train

    clock = StageClock(compute0=None)  # a resume from a meta with no "compute"
    clock.add_compute(StepResult(loss=None, tokens=100))
    assert clock.compute is None  # unknown, not a partial count passed off as the whole

    run = tmp_path / "old"
    shutil.copytree(micro_run, run, ignore=shutil.ignore_patterns("train.lock", "sft_control"))
    meta = json.loads((run / "rl" / "meta.json").read_text())
    del meta["compute"], meta["metrics"]["compute"]
    (run / "rl" / "meta.json").write_text(json.dumps(meta))
    train(run, stages="control", resume=True, device="cpu")
    assert read_meta(run / "sft_control")["matched_on"] == "seconds"


def test_existing_run_needs_resume_or_stages(micro_run):
    from engine.train.pipeline import PipelineError, train

    with pytest.raises(PipelineError, match="--resume"):
        train(micro_run, preset="micro", device="cpu")
    with pytest.raises(PipelineError, match="made with preset 'micro'"):
        train(micro_run, preset="tiny", resume=True, device="cpu")


def _trainer(run: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "deepdive", "train", "--preset", "micro",
           "--run", str(run), "--device", "cpu", "--quiet", *args]
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait_for(run: Path, pred, proc: subprocess.Popen, timeout: float = 120) -> list[dict]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        events = read_events(run / "events.jsonl") if (run / "events.jsonl").exists() else []
        if any(pred(e) for e in events):
            return events
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited early: {proc.stdout.read()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("timed out waiting for the trainer")


def test_resume_after_kill_continues_the_loss_curve(tmp_path):
    run = tmp_path / "killed"
    slow = {"DEEPDIVE_TEST_STEP_SLEEP": "0.15"}
    proc = _trainer(run, "--stages", "tokenizer,pretrain", env=slow)
    _wait_for(run, lambda e: e["type"] == "step" and e["stage"] == "pretrain"
              and e["step"] >= 15, proc)
    proc.send_signal(signal.SIGKILL)  # no chance to save anything on the way out
    proc.wait()
    before = read_events(run / "events.jsonl")
    assert not any(e["type"] == "run_end" for e in before)
    ckpts = [e["step"] for e in before if e["type"] == "checkpoint" and e["stage"] == "pretrain"]
    assert ckpts and ckpts[-1] < 30
    res = _trainer(run, "--stages", "tokenizer,pretrain", "--resume")
    assert res.wait(timeout=180) == 0, res.stdout.read()
    # --quiet: no live panel, one line per stage that ran (the tokenizer was already done)
    printed = [ln for ln in res.stdout.read().splitlines() if " done in " in ln]
    assert [ln.split()[0] for ln in printed] == ["pretrain"], printed
    after = read_events(run / "events.jsonl")[len(before):]
    starts = [e for e in after if e["type"] == "stage_start"]
    assert [s["stage"] for s in starts] == ["pretrain"]  # the tokenizer was kept, not redone
    assert starts[0]["resumed"] and starts[0]["step"] == ckpts[-1]
    old = {e["step"]: e["loss"] for e in before if e["type"] == "step"}
    new = {e["step"]: e["loss"] for e in after if e["type"] == "step"}
    assert min(new) == ckpts[-1] + 1 and max(new) == 30
    shared = [s for s in new if s in old]
    assert shared  # steps the killed run had logged after its checkpoint come out the same
    for s in shared:
        assert new[s] == pytest.approx(old[s], rel=1e-4), s
    meta = json.loads((run / "base" / "meta.json").read_text())
    assert meta["done"] and meta["step"] == 30


def test_sigterm_saves_a_checkpoint_and_reports_stopped(tmp_path):
    run = tmp_path / "stopped"
    proc = _trainer(run, "--stages", "tokenizer,pretrain", env={"DEEPDIVE_TEST_STEP_SLEEP": "0.1"})
    _wait_for(run, lambda e: e["type"] == "step" and e["stage"] == "pretrain" and e["step"] >= 5,
              proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    events = read_events(run / "events.jsonl")
    assert events[-1]["type"] == "run_end" and events[-1]["status"] == "stopped"
    saved = [e for e in events if e["type"] == "checkpoint"][-1]
    meta = json.loads((run / "base" / "meta.json").read_text())
    assert meta["step"] == saved["step"] >= 5 and not meta["done"]
    assert (run / "base" / "optimizer.safetensors").is_file()  # resumable
