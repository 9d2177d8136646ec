"""engine/progress/state.py (the reducer) and watch.py (following the file): folding
events.jsonl into what the Train pane shows.

The recorded runs here are written with the real ``EventWriter`` and the fields the trainer
(engine/train/loop.py, pipeline.py) emits; ``recorded_run`` prefers the real micro run from
``tests/conftest.py`` when it exists. The other Train/Report tests import the builders below.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.progress.events import EVENTS_FILE, EventWriter, read_events
from engine.progress.state import RunState, Series
from engine.progress.watch import RunWatch
from engine.run import RunLock

STAGES = ["tokenizer", "pretrain", "sft", "rl", "eval"]


def write_head(ev: EventWriter, stages=STAGES) -> None:
    ev.emit("run_start", pid=0, preset="micro", stages=stages, seed=3, resumed=False,
            world_size=1, device="cpu")
    ev.emit("stage_start", stage="tokenizer", step=0, total_steps=1)
    ev.emit("stage_end", stage="tokenizer", step=1,
            summary={"n_vocab": 512, "n_docs": 40, "tokens": 9000, "chars_per_token": 2.5})


def write_stage(ev: EventWriter, stage: str, steps: int, start: int = 0, upto: int | None = None,
                run_dir: Path | None = None, end: bool = True) -> None:
    """A trained stage as loop.py writes it: steps, evals, samples, checkpoints, stage_end."""
    ev.emit("stage_start", stage=stage, step=start, total_steps=steps, tokens_per_step=256)
    for step in range(start + 1, (upto or steps) + 1):
        extra = {}
        if stage == "rl":
            extra = {"reward": round(step / (2 * steps), 4), "pass_at_group": 0.5,
                     "resp_len": 30.0 - step / 4}
            extra["pass1"] = extra["reward"]
        ev.emit("step", stage=stage, step=step, total_steps=steps, loss=round(4.0 / step, 5),
                lr=1e-3, tok_s=9000.0 + step, mfu=0.05, elapsed_s=step * 0.1, **extra)
        if step % 5 == 0:
            metric = {"heldout_pass1": step / (3 * steps)} if stage == "rl" else {
                "val_loss": round(4.2 / step, 5)}
            ev.emit("eval", stage=stage, step=step, **metric)
            ev.emit("sample", stage=stage, step=step, prompt="The capital of Vorland is",
                    text=f"{stage} sample at step {step}")
        if step % 10 == 0 and step < steps:
            path = str(run_dir / {"pretrain": "base"}.get(stage, stage)) if run_dir else stage
            ev.emit("checkpoint", stage=stage, step=step, path=path)
    if end:
        ev.emit("stage_end", stage=stage, step=steps,
                summary={"val_loss": 0.5, "steps": steps} if stage != "rl"
                else {"heldout_pass1": 0.4, "steps": steps})


def make_finished_run(run_dir: Path) -> Path:
    ev = EventWriter(run_dir)
    write_head(ev)
    write_stage(ev, "pretrain", 20, run_dir=run_dir)
    write_stage(ev, "sft", 10, run_dir=run_dir)
    write_stage(ev, "rl", 10, run_dir=run_dir)
    ev.emit("stage_start", stage="eval", step=0, total_steps=1)
    ev.emit("stage_end", stage="eval", step=1, summary={"arith_pass1_rl": 0.3, "format_sft": 0.9})
    ev.emit("run_end", status="done")
    return run_dir


def make_crashed_run(run_dir: Path) -> Path:
    """Killed mid-pretraining: no error, no run_end, nobody holds the lock."""
    ev = EventWriter(run_dir)
    write_head(ev)
    write_stage(ev, "pretrain", 40, upto=23, run_dir=run_dir, end=False)
    return run_dir


def make_failed_run(run_dir: Path) -> Path:
    ev = EventWriter(run_dir)
    write_head(ev)
    write_stage(ev, "pretrain", 20, upto=12, run_dir=run_dir, end=False)
    msg = "pretrain: the loss became nan at step 13; training stopped."
    ev.emit("error", stage="pretrain", step=13, message=msg, last_checkpoint=str(run_dir / "base"))
    ev.emit("run_end", status="stopped", reason=msg, error=True)
    return run_dir


@pytest.fixture
def recorded_run(request, tmp_path) -> Path:
    return copy_recorded_run(request, tmp_path)


def copy_recorded_run(request, tmp_path: Path) -> Path:
    """A finished run: a copy of the trainer's real micro run when conftest provides it, else
    one written here with the same events."""
    try:
        real = request.getfixturevalue("micro_run")
    except pytest.FixtureLookupError:
        return make_finished_run(tmp_path / "recorded")
    dest = tmp_path / Path(real).name
    shutil.copytree(real, dest, ignore=shutil.ignore_patterns("*.safetensors"))
    return dest


def fold(run_dir: Path) -> RunWatch:
    watch = RunWatch(run_dir)
    watch.refresh()
    return watch


def test_finished_run_all_stages_done_with_figures(recorded_run):
    state = fold(recorded_run).state
    for name in ("tokenizer", "pretrain", "sft", "rl", "eval"):
        st = state.stages[name]
        assert st.status == "done", (name, st)
        assert st.headline(), f"{name} has no final figure"
    assert state.end_status == "done" and state.unexpected_stop() is None
    loss = state.curve("pretrain", "loss")
    assert loss is not None and len(loss) >= 2
    assert state.curve("pretrain", "val_loss") is not None
    assert state.curve("rl", "reward") is not None
    assert state.samples, "samples logged by the trainer are kept"


def test_figures_match_the_events(tmp_path):
    run = make_finished_run(tmp_path / "r")
    state = fold(run).state
    assert state.stages["tokenizer"].headline() == "vocab 512"
    assert state.stages["rl"].headline() == "held-out pass@1 0.400"
    xs, ys = state.curve("pretrain", "loss").points()
    assert xs[0] == 1 and ys[0] == 4.0 and xs[-1] == 20
    assert state.curve("rl", "resp_len").last == 30.0 - 10 / 4
    assert state.samples[-1].text == "rl sample at step 10"
    assert state.stages["pretrain"].step == 20 and state.stages["pretrain"].total == 20


def test_crashed_trainer_is_stopped_unexpectedly_with_last_checkpoint(tmp_path):
    run = make_crashed_run(tmp_path / "crash")
    state = fold(run).state
    note = state.unexpected_stop()
    assert note is not None
    assert "stopped unexpectedly at pretrain step 23" in note
    assert str(run / "base") in note
    assert state.stages["pretrain"].status == "stopped"


def test_a_live_trainer_holding_the_lock_is_not_called_dead(tmp_path):
    run = make_crashed_run(tmp_path / "live")
    with RunLock(run):
        watch = fold(run)
        assert watch.state.alive is True
        assert watch.state.unexpected_stop() is None
        assert watch.state.running_stage.name == "pretrain"
        assert watch.state.stages["pretrain"].fraction == pytest.approx(23 / 40)


def test_error_event_fails_the_stage(tmp_path):
    state = fold(make_failed_run(tmp_path / "nan")).state
    st = state.stages["pretrain"]
    assert st.status == "failed" and "loss became nan" in st.error
    assert state.error.startswith("pretrain:")
    assert state.unexpected_stop() is None  # it said why; no guessing
    assert state.stages["sft"].status == "waiting"


def test_empty_run(tmp_path):
    (tmp_path / "empty").mkdir()
    watch = fold(tmp_path / "empty")
    assert watch.state.n_events == 0 and watch.state.unexpected_stop() is None
    (tmp_path / "empty" / EVENTS_FILE).write_text("")
    assert fold(tmp_path / "empty").state.n_events == 0


def test_truncated_last_line_waits_then_parses(tmp_path):
    run = make_crashed_run(tmp_path / "cut")
    with open(run / EVENTS_FILE, "a") as f:
        f.write('{"t": 1, "type": "step", "stage": "pretrain", "step": 24, "total_st')
    with RunLock(run):
        watch = fold(run)
        assert watch.partial and watch.state.stages["pretrain"].step == 23
        with open(run / EVENTS_FILE, "a") as f:
            f.write('eps": 40, "loss": 0.1}\n')
        assert watch.refresh()
        assert not watch.partial and watch.state.stages["pretrain"].step == 24


def test_follow_appends_reads_only_new_events(tmp_path):
    run = tmp_path / "grow"
    ev = EventWriter(run)
    with RunLock(run):
        write_head(ev)
        watch = fold(run)
        before = watch.state.n_events
        assert not watch.refresh()  # nothing new: no change reported
        write_stage(ev, "pretrain", 10, upto=4, end=False)
        assert watch.refresh()
        assert watch.state.n_events > before
        assert watch.state.stages["pretrain"].step == 4
        assert watch.follower.offset == (run / EVENTS_FILE).stat().st_size


def test_resume_restarts_stopped_stage_and_trims_curve(tmp_path):
    run = tmp_path / "resume"
    ev = EventWriter(run)
    write_head(ev)
    write_stage(ev, "pretrain", 40, upto=23, run_dir=run, end=False)
    ev.emit("run_end", status="stopped", reason="pretrain stopped at step 23/40")
    state = fold(run).state
    assert state.stages["pretrain"].status == "stopped"
    ev.emit("run_start", pid=0, preset="micro", stages=STAGES, seed=3, resumed=True)
    write_stage(ev, "pretrain", 40, start=20, upto=25, run_dir=run, end=False)
    state = fold(run).state
    st = state.stages["pretrain"]
    assert st.status in ("running", "stopped") and st.step == 25
    xs, _ = state.curve("pretrain", "loss").points()
    assert xs == sorted(xs), "a resume from step 20 replaces the points after it"


def test_series_stays_compact_and_keeps_the_mean():
    s = Series(cap=256)
    for i in range(100_000):
        s.append(i, float(i % 10))
    xs, ys = s.points()
    assert len(xs) <= 256
    assert sum(ys) / len(ys) == pytest.approx(4.5, abs=0.2)
    assert xs == sorted(xs) and xs[-1] > 99_000
    assert s.last == 9.0


def test_long_backlog_read_fast_path_gives_the_same_figures(tmp_path):
    run = tmp_path / "long"
    ev = EventWriter(run)
    write_head(ev)
    lines = []
    for step in range(1, 12_001):  # > 1 MB: RunWatch takes the skimming path
        lines.append(json.dumps({"t": 1.0 + step, "type": "step", "stage": "pretrain",
                                 "step": step, "total_steps": 12_000, "loss": 1000.0 / step,
                                 "tok_s": float(step), "mfu": 0.01, "lr": 1e-3}))
        if step % 1000 == 0:
            lines.append(json.dumps({"t": 1.0 + step, "type": "sample", "stage": "pretrain",
                                     "step": step, "prompt": "p", "text": f"at {step}"}))
    with open(run / EVENTS_FILE, "a") as f:
        f.write("\n".join(lines) + "\n")
    fast = fold(run).state
    full = RunState()
    full.apply_all(read_events(run / EVENTS_FILE))
    assert fast.stages["pretrain"].step == full.stages["pretrain"].step == 12_000
    assert fast.tok_s == full.tok_s == 12_000.0
    assert [s.text for s in fast.samples] == [s.text for s in full.samples]
    assert fast.curve("pretrain", "loss").last == full.curve("pretrain", "loss").last
    assert len(fast.curve("pretrain", "loss")) > 100
