"""`deepdive` itself: the options that open the app (--run, --pane, --fps, --no-animation),
their refusals, and help text without oddities for every command."""

from __future__ import annotations

import pytest
import textual.screen
from typer.testing import CliRunner

from deepdive.cli import PANES
from deepdive.cli import app as cli
from tui.app import DeepdiveApp
from tui.pane_registry import PANE_KEYS

runner = CliRunner()


@pytest.fixture
def opened(monkeypatch) -> list[DeepdiveApp]:
    """Apps the command would run, kept instead of run."""
    apps: list[DeepdiveApp] = []
    monkeypatch.setattr(DeepdiveApp, "run", lambda self, *a, **k: apps.append(self))
    # --fps sets Textual's frame period for the process: put it back after the test
    monkeypatch.setattr(textual.screen, "UPDATE_PERIOD", textual.screen.UPDATE_PERIOD)
    return apps


def test_the_cli_offers_the_apps_panes():
    assert list(PANES) == PANE_KEYS


def test_options_open_the_app_where_asked(root, opened):
    (root / "mine").mkdir()
    (root / "mine" / "tokenizer.json").write_text("{}")
    result = runner.invoke(cli, ["--run", "mine", "--pane", "sample", "--fps", "10",
                                 "--no-animation"])
    assert result.exit_code == 0, result.output
    (app,) = opened
    assert app.start_tab == "sample" and app.run_name == "mine"
    assert app.animation_level == "none" and not app.read_only
    assert textual.screen.UPDATE_PERIOD == pytest.approx(0.1)


def test_default_run_is_tiny_when_there(root, opened):
    assert runner.invoke(cli, []).exit_code == 0
    assert opened[-1].run_name is None and opened[-1].start_tab == "tokens"  # no tiny run here
    (root / "tiny").mkdir()
    (root / "tiny" / "tokenizer.json").write_text("{}")
    assert runner.invoke(cli, []).exit_code == 0
    assert opened[-1].run_name == "tiny"
    assert opened[-1].animation_level != "none"


@pytest.mark.parametrize("args, says", [
    (["--pane", "nope"], "--pane"),
    (["--fps", "0"], "--fps"),
    (["--fps", "many"], "--fps"),
    (["--run", "nope"], "'nope'"),
    (["--pane", "train", "runs"], "without a command"),
])
def test_bad_values_exit_2_with_a_message(root, opened, args, says):
    (root / "empty").mkdir()  # a folder that is not a run
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert not opened


def test_a_folder_that_is_not_a_run_is_refused(root, opened):
    (root / "empty").mkdir()
    result = runner.invoke(cli, ["--run", "empty"])
    assert result.exit_code == 2 and "not a run" in result.output and not opened


COMMANDS = [[], ["tokenize"], ["sample"], ["runs"], ["train"], ["eval"], ["report"], ["demo"],
            ["serve"], ["tokenizer"], ["tokenizer", "train"], ["import"], ["import", "gpt2"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "deepdive")
def test_help_has_no_oddities(command):
    result = runner.invoke(cli, [*command, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Usage: deepdive" in text and "--help" in text
    assert "<bool>" not in text  # a flag takes no value
    assert "``" not in text  # raw reStructuredText markup
    assert "{" not in text.split("Usage:", 1)[1].splitlines()[0]  # {prompt} in the usage line


def test_sample_help_names_its_argument_plainly():
    result = runner.invoke(cli, ["sample", "--help"], terminal_width=100)
    assert "Usage: deepdive sample [OPTIONS] PROMPT" in result.output
