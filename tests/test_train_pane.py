"""The Train pane (Pilot, 80×24 and 160×48): track states, curves, samples, error states,
following a run while it is written, and start / stop / resume of a trainer child process."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
from rich.console import Console
from test_run_state import (
    copy_recorded_run,
    make_crashed_run,
    make_failed_run,
    make_finished_run,
    write_head,
    write_stage,
)
from textual.app import App, ComposeResult
from textual.widgets import Select, Static

from engine.progress.events import EVENTS_FILE, EventWriter
from engine.run import RunLock
from tui.panes import train_proc
from tui.panes.train import TrainPane
from tui.panes.train_plot import BraillePlot
from tui.widgets.confirm import Confirm

SIZES = [(80, 24), (160, 48)]
pytestmark = pytest.mark.anyio


class Host(App):
    def __init__(self, run: str | None = None):
        super().__init__()
        self.run_name = run

    def compose(self) -> ComposeResult:
        yield TrainPane(id="train-pane")


def plain(app: App, selector: str) -> str:
    """A Static's content as plain text (rich renderables rendered at 200 columns)."""
    content = app.query_one(selector, Static).content
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(content)
    return console.export_text()


async def settle(app: App, pilot, seconds: float = 0.4) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause(seconds)


@pytest.mark.parametrize("size", SIZES)
async def test_finished_run_shows_track_curves_and_samples(root, size):
    make_finished_run(root / "done")
    app = Host(run="done")
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        track = plain(app, "#train-track")
        for word in ("tokenizer", "pretrain", "SFT", "RL", "eval"):
            assert word in track
        assert track.count("✓") == 5, track
        assert "vocab 512" in track
        assert "finished" in plain(app, "#train-status")
        plot = app.query_one("#train-plot-a", BraillePlot)
        assert plot.curves and all(c.xs for c in plot.curves)  # RL: reward, pass@1, held-out
        assert any(0x2800 < ord(ch) <= 0x28FF for ch in str(plot.render()))
        assert "rl sample at step 10" in plain(app, "#train-samples-text")
        stats = plain(app, "#train-stats")
        assert "tok/s" in stats and "mem" in stats
        await pilot.press("c")  # cycle the curves to another stage
        await pilot.pause(0.05)
        titles = app.query_one("#train-plot-a", BraillePlot).title
        assert titles and not titles.startswith("RL")


@pytest.mark.parametrize("size", SIZES)
async def test_recorded_trainer_run_in_the_pane(request, tmp_path, root, size):
    """The real trainer's micro run (when conftest has it): every stage it ran is done, with its
    final figure; curves and the last logged sample are on screen."""
    from engine.progress.events import read_events

    recorded = copy_recorded_run(request, tmp_path)
    run = root / recorded.name
    recorded.rename(run)
    events = read_events(run / EVENTS_FILE)
    ran = {e["stage"] for e in events if e["type"] == "stage_end"}
    app = Host(run=run.name)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        assert "finished" in plain(app, "#train-status")
        track = plain(app, "#train-track")
        assert track.count("✓") == len(ran), track
        assert "✗" not in track
        plot = app.query_one("#train-plot-a", BraillePlot)
        # the last stage's curves; control may have run one step (its steps follow RL's seconds)
        assert plot.curves and all(c.xs for c in plot.curves)
        last_sample = [e for e in events if e["type"] == "sample"][-1]
        shown = " ".join(plain(app, "#train-samples-text").split())
        assert " ".join(last_sample["text"].replace("\n", "⏎ ").split())[:30] in shown


@pytest.mark.parametrize("size", SIZES)
async def test_crashed_trainer_says_where_it_stopped(root, size):
    run = make_crashed_run(root / "crash")
    app = Host(run="crash")
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        status = plain(app, "#train-status")
        assert "stopped unexpectedly at pretrain step 23" in status
        assert str(run / "base") in status
        assert "stopped at 23" in plain(app, "#train-track")


async def test_error_event_shows_failed_stage(root):
    make_failed_run(root / "nan")
    app = Host(run="nan")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        assert "✗" in plain(app, "#train-track")
        status = plain(app, "#train-status")
        assert "failed: pretrain:" in status and "loss became nan" in status


async def test_truncated_last_line_and_empty_run(root):
    run = make_crashed_run(root / "cut")
    with open(run / EVENTS_FILE, "a") as f:
        f.write('{"t": 1, "type": "step", "stage": "pretr')
    (root / "empty").mkdir()
    (root / "empty" / EVENTS_FILE).write_text("")
    app = Host(run="cut")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        status = plain(app, "#train-status")
        assert "incomplete last line ignored" in status
        assert "step 23" in status
        app.query_one("#train-run", Select).value = "empty"
        await settle(app, pilot)
        assert "no events yet" in plain(app, "#train-status")
        assert "no curves yet" in app.query_one("#train-plot-a", BraillePlot).title


@pytest.mark.parametrize("size", SIZES)
async def test_attach_follows_a_run_being_written(root, size):
    run = root / "live"
    ev = EventWriter(run)
    with RunLock(run):  # as a trainer started elsewhere would hold it
        write_head(ev)
        write_stage(ev, "pretrain", 40, upto=3, run_dir=run, end=False)
        app = Host()
        async with app.run_test(size=size) as pilot:
            await pilot.pause(0.1)
            app.query_one("#train-run", Select).value = "live"
            await settle(app, pilot)
            assert "training" in plain(app, "#train-status")
            assert "8%" in plain(app, "#train-track")  # 3/40
            for step in range(4, 21):
                ev.emit("step", stage="pretrain", step=step, total_steps=40, loss=4.0 / step,
                        tok_s=5000.0, mfu=0.02, elapsed_s=step * 0.1)
            ev.emit("sample", stage="pretrain", step=20, prompt="Once", text="appended live")
            await pilot.pause(0.6)
            assert "50%" in plain(app, "#train-track")
            assert "pretrain 20/40" in plain(app, "#train-stats")
            assert "5.0k tok/s" in plain(app, "#train-stats")
            assert "appended live" in plain(app, "#train-samples-text")
            xs = app.query_one("#train-plot-a", BraillePlot).curves[0].xs
            assert xs[-1] == 20
            ev.emit("stage_end", stage="pretrain", step=40, summary={"val_loss": 1.5})
            ev.emit("run_end", status="done")
    app = Host(run="live")  # opened again after the trainer left: its full history, finished
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        assert "finished" in plain(app, "#train-status")
        assert "✓ val loss 1.50" in plain(app, "#train-track")


FAKE_TRAINER = textwrap.dedent('''
    """A stand-in for `deepdive train` with its contract: lock, events, SIGINT saves and stops."""
    import os, signal, sys, time
    sys.path.insert(0, {repo!r})
    from engine.progress.events import EventWriter
    from engine.run import RunLock
    args = sys.argv[2:]
    run = args[args.index("--run") + 1]
    run_dir = os.path.join(os.environ["DEEPDIVE_CHECKPOINTS"], run)
    resume = "--resume" in args
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    with RunLock(run_dir):
        ev = EventWriter(run_dir)
        ev.emit("run_start", pid=os.getpid(), preset="micro", stages=["pretrain"], seed=0,
                resumed=resume)
        start = 50 if resume else 0
        ev.emit("stage_start", stage="pretrain", step=start, total_steps=100000)
        print("fake trainer running", flush=True)
        step = start
        while not stop:
            step += 1
            ev.emit("step", stage="pretrain", step=step, total_steps=100000, loss=1.0, tok_s=1.0)
            time.sleep(0.02)
        ev.emit("checkpoint", stage="pretrain", step=step, path=os.path.join(run_dir, "base"))
        ev.emit("run_end", status="stopped", reason=f"pretrain stopped at step {{step}}")
''')


async def wait_for(pilot, predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await pilot.pause(0.1)
    return predicate()


async def test_new_stop_resume_spawn_and_signal_the_trainer(root, tmp_path, monkeypatch):
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER.format(repo=str(Path(__file__).resolve().parent.parent)))
    monkeypatch.setattr(train_proc, "deepdive_command", lambda: [sys.executable, str(script)])
    spawned = []
    real_spawn = train_proc.spawn_trainer

    def spawn(run_dir, args):
        spawned.append(real_spawn(run_dir, args))
        return spawned[-1]

    monkeypatch.setattr(train_proc, "spawn_trainer", spawn)
    try:
        await _new_stop_resume(root)
    finally:
        for child in spawned:  # a failing assertion must not leave a trainer behind
            if child.poll() is None:
                child.kill()
                child.wait()
    assert len(spawned) == 2


async def _new_stop_resume(root: Path) -> None:
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(TrainPane)
        await pilot.pause(0.1)
        app.query_one("#train-preset", Select).value = "micro"
        await pilot.press("n")  # asks first, with the preset's estimated time
        assert await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        question = str(app.screen.query_one("#confirm-text", Static).content)
        assert "micro" in question and "estimate" in question and pane.child is None
        await pilot.press("y")
        assert await wait_for(pilot, lambda: pane.child is not None)
        child = pane.child
        run_dir = pane.child_dir
        assert run_dir.parent == root and run_dir.name.startswith("micro-s0-")
        assert await wait_for(pilot, lambda: "training" in plain(app, "#train-status"))
        assert app.query_one("#train-run", Select).value == run_dir.name
        await pilot.press("s")  # SIGINT: the trainer writes its checkpoint and run_end
        assert child.wait(timeout=10) == 0
        assert await wait_for(pilot, lambda: "Resume" in plain(app, "#train-status"))
        assert "fake trainer running" in (run_dir / train_proc.TRAIN_LOG_FILE).read_text()
        await pilot.press("r")
        resumed = pane.child
        assert resumed is not None and resumed is not child
        assert await wait_for(pilot, lambda: "training" in plain(app, "#train-status"))
        await pilot.press("s")
        assert resumed.wait(timeout=10) == 0
        assert await wait_for(pilot, lambda: "stopped" in plain(app, "#train-status"))


async def test_stop_without_a_trainer_says_so(root):
    make_finished_run(root / "done")
    app = Host(run="done")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("s")
        await pilot.pause(0.05)
        assert any("no trainer is running" in n.message for n in app._notifications)


async def test_new_run_asks_first_and_no_means_no(root, monkeypatch):
    started = []
    monkeypatch.setattr(train_proc, "spawn_trainer", lambda *a: started.append(a))
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        await pilot.press("n")  # the tiny preset: minutes of training
        assert await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        question = str(app.screen.query_one("#confirm-text", Static).content)
        assert "tiny" in question and "About " in question and "estimate" in question
        await pilot.press("enter")  # the focused button is Cancel: a stray Enter starts nothing
        assert await wait_for(pilot, lambda: not isinstance(app.screen, Confirm))
        await pilot.press("n")
        assert await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert started == [] and app.query_one(TrainPane).child is None


def test_estimate_uses_a_finished_run_of_the_preset_here(tmp_path):
    """With the committed tiny run beside it, the tiny estimate is that run's stage times."""
    import shutil

    from engine.api import estimate_run_s

    repo_tiny = Path(__file__).resolve().parent.parent / "checkpoints" / "tiny"
    root = tmp_path / "runs"
    root.mkdir()
    seconds, how = estimate_run_s("tiny", root)  # nothing here: FLOPs at an assumed speed
    assert seconds > 0 and "rough estimate" in how
    (root / "tiny").mkdir()
    for name in ("run.json", "tokenizer.json"):
        shutil.copy(repo_tiny / name, root / "tiny" / name)
    for d in ("base", "sft", "rl", "sft_control"):
        (root / "tiny" / d).mkdir()
        shutil.copy(repo_tiny / d / "meta.json", root / "tiny" / d / "meta.json")
        (root / "tiny" / d / "model.safetensors").write_bytes(b"")
    seconds, how = estimate_run_s("tiny", root)
    assert "tiny" in how and "estimate" in how
    stages = [json.loads((repo_tiny / d / "meta.json").read_text())
              for d in ("base", "sft", "rl", "sft_control")]
    spent = sum(m["metrics"]["train_s"] for m in stages)  # the committed run's own stage clocks
    assert 0.8 * spent < seconds < 1.25 * spent


async def test_stopping_a_trainer_started_elsewhere_asks_first(root, monkeypatch):
    make_finished_run(root / "away")
    signals = []
    monkeypatch.setattr(train_proc, "trainer_pid", lambda run_dir: 4242)
    monkeypatch.setattr(train_proc, "ask_to_stop", lambda pid, hard=False: signals.append(
        (pid, hard)))
    app = Host(run="away")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("s")
        assert await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        assert "started elsewhere" in str(app.screen.query_one("#confirm-text").content)
        await pilot.press("n")  # no: nothing is signalled
        assert await wait_for(pilot, lambda: not isinstance(app.screen, Confirm))
        assert signals == []
        await pilot.press("s")
        assert await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        assert await wait_for(pilot, lambda: signals == [(4242, False)])
        await pilot.press("s")  # a second s never hard-kills without asking
        assert await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        assert "Force" in str(app.screen.query_one("#confirm-text").content)
        assert signals == [(4242, False)]
        await pilot.press("y")
        assert await wait_for(pilot, lambda: signals == [(4242, False), (4242, True)])


async def test_finished_run_shows_training_time_labels_and_axes(root):
    """Training time is the stages' own clocks summed, not the wall clock since run_start;
    the seed and preset fields are labelled; curves have a step axis and y values."""
    from engine.progress.events import EventWriter

    run = root / "slow"
    ev = EventWriter(run)
    write_head(ev)
    write_stage(ev, "pretrain", 20, run_dir=run)  # steps ~0.1 s apart on the stage clock
    ev.emit("stage_start", stage="sft", step=0, total_steps=10)
    ev.emit("step", stage="sft", step=10, total_steps=10, loss=1.0, elapsed_s=60.0)
    ev.emit("stage_end", stage="sft", step=10, summary={"val_loss": 0.9, "elapsed_s": 60.0})
    ev.emit("run_end", status="done")
    events = run / EVENTS_FILE
    lines = events.read_text().splitlines()
    import json

    # a day passes between pretraining and SFT (a resume): the wall clock says 24 h+
    shifted = []
    for line in lines:
        e = json.loads(line)
        if e.get("stage") == "sft" or e["type"] == "run_end":
            e["t"] += 86400
        shifted.append(json.dumps(e))
    events.write_text("\n".join(shifted) + "\n")
    app = Host(run="slow")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        stats = plain(app, "#train-stats")
        assert "trained 1:0" in stats and "24:" not in stats, stats
        assert "elapsed" not in stats
        labels = [str(w.content) for w in app.query("#train-controls Label")]
        assert labels == ["preset", "seed"]
        plot = app.query_one("#train-plot-a", BraillePlot)
        drawn = str(plot.render())
        rows = drawn.splitlines()
        assert "loss by step" in rows[0]
        assert "└" in rows[-1] and "step" in rows[-1] and rows[-1].rstrip().endswith("10")


async def test_opens_on_the_apps_run(root):
    """Train opens on the app's run (its finished history), not empty, and not the first run
    in the folder; a run still training is labelled so in the picker."""
    make_finished_run(root / "tiny")
    make_crashed_run(root / "aaa")
    with RunLock(root / "aaa"):
        app = Host(run="tiny")
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            assert app.query_one("#train-run", Select).value == "tiny"
            assert "tiny" in plain(app, "#train-status") and "finished" in plain(
                app, "#train-status")
            options = dict((v, str(p)) for p, v in app.query_one("#train-run", Select)._options)
            assert options["aaa"] == "aaa (training)"


def timed_events(steps: int = 40, upto: int = 30) -> list[dict]:
    """A run mid-pretrain with a steady pace (0.5 s a step), so both front ends have an ETA."""
    t0 = 1_000_000.0
    events = [{"t": t0, "type": "run_start", "pid": 0, "preset": "micro", "seed": 3,
               "stages": ["tokenizer", "pretrain"]},
              {"t": t0, "type": "stage_start", "stage": "tokenizer", "step": 0, "total_steps": 1},
              {"t": t0 + 1, "type": "stage_end", "stage": "tokenizer", "step": 1,
               "summary": {"n_vocab": 512, "elapsed_s": 1.0}},
              {"t": t0 + 2, "type": "stage_start", "stage": "pretrain", "step": 0,
               "total_steps": steps}]
    for step in range(1, upto + 1):
        events.append({"t": t0 + 2 + step / 2, "type": "step", "stage": "pretrain", "step": step,
                       "total_steps": steps, "loss": 4.0 / step, "tok_s": 5000.0, "mfu": 0.02,
                       "elapsed_s": step / 2})
    return events


def end_events(t: float, steps: int = 40) -> list[dict]:
    return [{"t": t, "type": "stage_end", "stage": "pretrain", "step": steps,
             "summary": {"val_loss": 1.5, "elapsed_s": 20.0}},
            {"t": t, "type": "run_end", "status": "done"}]


def write_events(run_dir: Path, events: list[dict]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / EVENTS_FILE, "a", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")


async def test_cli_display_and_pane_agree_on_the_same_events(root):
    """One reducer for every front end: ``deepdive train``'s display and the Train pane fold the
    same events into the same step, ETA, figures and stage words."""
    import io

    from deepdive.commands.train import TrainDisplay
    from engine.progress.text import stage_status, stats_parts
    from engine.progress.watch import RunWatch

    run = root / "agree"
    events = timed_events()
    display = TrainDisplay("agree", console=Console(file=io.StringIO(), width=200))
    assert not display.live_mode  # not a terminal: plain lines
    with RunLock(run):  # a trainer holds the run: the pane follows it live
        write_events(run, events)
        for e in events:
            display.on_event(e)
        watch = RunWatch(run)
        watch.refresh()
        now = events[-1]["t"] + 1
        cli = display.stats_line(now)
        assert cli == " · ".join(stats_parts(watch.state, now))
        assert "pretrain 30/40" in cli and "5.0k tok/s" in cli and "ETA 0:05" in cli  # 10 × 0.5 s
        assert [stage_status(s, False) for s in display.state.ordered_stages()] == \
            [stage_status(s, False) for s in watch.state.ordered_stages()]
        app = Host(run="agree")
        async with app.run_test(size=SIZES[1]) as pilot:
            await settle(app, pilot)
            stats, track = plain(app, "#train-stats"), plain(app, "#train-track")
            assert cli.split(" · trained")[0] in stats and "ETA 0:05" in stats
            for st in display.state.ordered_stages():
                assert stage_status(st, False) in track
    done = end_events(events[-1]["t"] + 5)
    write_events(run, done)
    for e in done:
        display.on_event(e)
    rendered = display.console.file.getvalue()
    assert "pretrain  done in 20.0s  val loss 1.50" in rendered  # the plain line per stage
    app = Host(run="agree")
    async with app.run_test(size=SIZES[1]) as pilot:
        await settle(app, pilot)
        assert plain(app, "#train-stats").startswith(display.stats_line())
        assert "✓ val loss 1.50" in plain(app, "#train-track")
        assert display.state.stage("pretrain").headline() == "val loss 1.50"


def test_runs_listing_reports_a_training_run_from_the_reducer(root):
    """``deepdive runs`` says where a training run is with the same reducer and words."""
    from typer.testing import CliRunner

    from deepdive.cli import app
    from engine.progress.text import stats_parts
    from engine.progress.watch import RunWatch

    run = root / "busy"
    write_events(run, timed_events())
    runner = CliRunner()
    with RunLock(run):
        rows = json.loads(runner.invoke(app, ["runs", "--json"]).stdout)
        table = runner.invoke(app, ["runs"], env={"COLUMNS": "200"}).stdout
        watch = RunWatch(run)
        watch.refresh()
    progress = rows[0]["progress"]
    assert progress == {"status": "training", "stage": "pretrain", "step": 30, "total": 40,
                        "eta_s": 5.0}
    assert "busy (training pretrain 30/40, ETA 0:05)" in table
    assert stats_parts(watch.state)[-1] == "ETA 0:05"
    rows = json.loads(runner.invoke(app, ["runs", "--json"]).stdout)
    assert rows[0]["progress"] is None  # not training: its events are not read


async def test_a_trainer_killed_while_followed_is_reported_and_the_pane_still_works(root,
                                                                                   tmp_path):
    import signal
    import subprocess

    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER.format(repo=str(Path(__file__).resolve().parent.parent)))
    child = subprocess.Popen([sys.executable, str(script), "train", "--run", "doomed"],
                             env={**os.environ, "DEEPDIVE_CHECKPOINTS": str(root)},
                             stdout=subprocess.DEVNULL)
    try:
        app = Host()
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for(pilot, lambda: (root / "doomed" / EVENTS_FILE).exists())
            assert await wait_for(pilot, lambda: _pick(app, "doomed"))  # once the picker polls
            assert await wait_for(pilot, lambda: "training" in plain(app, "#train-status"))
            child.send_signal(signal.SIGKILL)  # no run_end, no checkpoint: it is just gone
            child.wait()
            assert await wait_for(pilot, lambda: "stopped unexpectedly" in
                                  plain(app, "#train-status"))
            assert "last checkpoint: none saved" in plain(app, "#train-status")  # nothing to lose
            await pilot.press("s")  # and the pane still answers: nothing left to stop
            assert await wait_for(pilot, lambda: any("no trainer is running" in n.message
                                                     for n in app._notifications))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _pick(app, run: str) -> bool:
    """Select ``run`` in the Train pane's picker; False until the picker's poll has listed it
    (a busy machine can take longer than the run takes to write its first event)."""
    from textual.widgets.select import InvalidSelectValueError

    try:
        app.query_one("#train-run", Select).value = run
    except InvalidSelectValueError:
        return False
    return True


async def test_pretraining_on_your_own_text_plots_its_val_loss_beside_the_worlds(root):
    """A run given --pretrain-data logs val_loss_user: the loss plot draws it, labelled."""
    run = root / "yours"
    ev = EventWriter(run)
    write_head(ev)
    ev.emit("stage_start", stage="pretrain", step=0, total_steps=20)
    for step in (10, 20):
        ev.emit("step", stage="pretrain", step=step, total_steps=20, loss=3.0 - step / 10,
                elapsed_s=step / 10)
        ev.emit("eval", stage="pretrain", step=step, val_loss=3.1 - step / 10,
                val_loss_user=3.4 - step / 20)
    app = Host(run="yours")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        drawn = str(app.query_one("#train-plot-a", BraillePlot).render())
        assert "val (your text)" in drawn and "val" in drawn.replace("val (your text)", ""), drawn
