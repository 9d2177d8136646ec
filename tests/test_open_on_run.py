"""Every pane opens on the app's current run (``tiny`` by default, or ``DeepdiveApp(run=)``),
not on the alphabetically first folder (Pilot, 80×24). The runs root holds the committed tiny
run (linked) and ``aaa``: it sorts first, has only a base model and is still training."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from test_tokens_pane import screen_text, until
from textual.widgets import Select, TabbedContent

from engine.run import RunLock
from tui.app import DeepdiveApp

pytestmark = pytest.mark.anyio
SIZE = (80, 24)
TINY = Path(__file__).resolve().parent.parent / "checkpoints" / "tiny"


@pytest.fixture
def runs(root: Path):
    (root / "tiny").symlink_to(TINY, target_is_directory=True)
    aaa = root / "aaa"
    aaa.mkdir()
    (aaa / "run.json").write_text(json.dumps({"preset": "tiny", "seed": 5}))
    (aaa / "base").symlink_to(TINY / "base", target_is_directory=True)
    (aaa / "tokenizer.json").symlink_to(TINY / "tokenizer.json")
    (aaa / "events.jsonl").write_text(json.dumps(
        {"t": 1.0, "type": "run_start", "preset": "tiny", "seed": 5, "stages": ["pretrain"]})
        + "\n")
    with RunLock(aaa):  # a trainer holds it: still training
        yield root


async def test_every_pane_opens_on_tiny_not_the_first_run(runs):
    app = DeepdiveApp(start_tab="sample")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        assert app.run_name == "tiny"
        sample = app.query_one("#sample-pane")
        await until(pilot, lambda: sample.selected_model() is not None, "Sample's model")
        assert sample.selected_model() == ("tiny", "sft")  # the chat model of the app's run
        labels = {v: str(p) for p, v in app.query_one("#sample-model", Select)._options}
        assert labels[("aaa", "base")] == "aaa (training) · base"
        assert labels[("tiny", "sft")] == "tiny · sft"
        assert "tiny · sft" in screen_text(app)
        assert not any("no run named" in n.message for n in app._notifications)

        await pilot.press("f4")
        await until(pilot, lambda: app.query("#train-pane"), "the Train pane")
        train = app.query_one("#train-pane")
        await until(pilot, lambda: train.watch is not None, "Train to read tiny's history")
        assert app.query_one("#train-run", Select).value == "tiny"
        await until(pilot, lambda: "finished" in screen_text(app), "tiny's finished track")
        text = screen_text(app)
        assert "tiny" in text and "Pick a run" not in text
        # training time: the stages summed, not the wall clock between the first and last event
        assert re.search(r"trained \d+:\d\d", text) and "3:29:" not in text  # not wall clock

        await pilot.press("f2")
        await until(pilot, lambda: app.query_one(TabbedContent).active == "tokens", "Tokens")
        tokens = app.query_one("#tokens-pane")
        assert tokens._second_default() == "tiny"  # side by side opens on the run's tokenizer


def zed_and_aaa(root: Path) -> Path:
    """No tiny: ``zed`` (a finished run, tiny's models) and ``aaa`` (sorts first, a base model
    only; the caller locks it: still training). Returns aaa."""
    (root / "zed").symlink_to(TINY, target_is_directory=True)
    aaa = root / "aaa"
    aaa.mkdir()
    (aaa / "base").symlink_to(TINY / "base", target_is_directory=True)
    (aaa / "tokenizer.json").symlink_to(TINY / "tokenizer.json")
    return aaa


async def test_a_named_run_wins_and_without_tiny_a_finished_run_is_chosen(root):
    aaa = zed_and_aaa(root)
    with RunLock(aaa):
        app = DeepdiveApp(start_tab="sample")  # no tiny here: not the training one either
        async with app.run_test(size=SIZE) as pilot:
            assert app.run_name is None
            sample = app.query_one("#sample-pane")
            await until(pilot, lambda: sample.selected_model() is not None, "a model")
            assert sample.selected_model() == ("zed", "sft")
        app = DeepdiveApp(start_tab="sample", run="aaa")
        async with app.run_test(size=SIZE) as pilot:
            sample = app.query_one("#sample-pane")
            await until(pilot, lambda: sample.selected_model() is not None, "a model")
            assert sample.selected_model() == ("aaa", "base")  # the best aaa has


def test_compare_and_sample_open_on_the_same_run_without_tiny(root):
    """With no run named, Compare opens where Sample does: a finished run with a model, not
    the alphabetically first one (still training)."""
    from engine.api import list_runs
    from tui.panes.compare import default_run
    from tui.runpick import open_model_run

    with RunLock(zed_and_aaa(root)):
        run, choices = default_run(None)
        assert run == "zed" == open_model_run(list_runs(), None).name
        # zed is the committed tiny run: its RLHF models are Compare's choices too
        assert choices == ["aaa/base", "zed/base", "zed/sft", "zed/rl", "zed/rlhf",
                           "zed/rlhf_over"]


def test_root_watch_says_when_runs_come_and_go(root):
    from tui.runpick import RootWatch

    watch = RootWatch()
    assert watch.changed() and not watch.changed()
    before = root.stat().st_mtime_ns
    (root / "new").mkdir()
    os.utime(root, ns=(before + 10**9, before + 10**9))  # a clock coarser than this test: later
    assert watch.changed() and not watch.changed()
