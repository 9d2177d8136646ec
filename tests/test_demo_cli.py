"""`deepdive demo` and `deepdive serve`: what they open, build, train and refuse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from deepdive.cli import app as cli
from deepdive.commands.demo import build_server, demo_command

ROOT = Path(__file__).resolve().parent.parent


def test_server_binds_to_localhost_by_default_and_runs_the_demo():
    server = build_server(port=8123)
    assert server.host == "127.0.0.1" and server.port == 8123
    assert server.public_url == "http://127.0.0.1:8123"
    assert server.command.endswith("demo --run tiny --read-only")
    wide = build_server(host="0.0.0.0", port=9000, run="mine", fps=10, no_animation=True)
    assert wide.host == "0.0.0.0"
    assert wide.command.endswith("demo --run mine --fps 10 --no-animation --read-only")


def test_serve_prints_the_url_and_honours_host(monkeypatch, tmp_path):
    from tui.serve_guard import GuardedServer

    served = []
    monkeypatch.setattr(GuardedServer, "serve", lambda self, *a, **k: served.append(self))
    monkeypatch.setattr("deepdive.commands.demo.ensure_run", lambda run: tmp_path)
    result = CliRunner().invoke(cli, ["serve", "--port", "8765"])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8765" in result.output
    assert served and served[0].host == "127.0.0.1"
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 0 and served[-1].host == "0.0.0.0"


def test_serve_without_textual_serve_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)  # import now fails
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    assert "deepdive[serve]" in result.output


def test_demo_refuses_an_unknown_run(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(tmp_path))
    result = CliRunner().invoke(cli, ["demo", "--run", "nope"])
    assert result.exit_code == 2
    assert "nope" in result.output and "no base/sft/rl model" in result.output


def test_demo_trains_the_missing_tiny_run_first(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(tmp_path))
    calls = []

    def train(cmd):  # the trainer fails: the demo must stop with a clear message
        calls.append(cmd)
        return 3

    monkeypatch.setattr("deepdive.commands.demo.subprocess.call", train)
    result = CliRunner().invoke(cli, ["demo"])
    assert calls and calls[0][-5:] == ["train", "--preset", "tiny", "--run", "tiny"]
    assert result.exit_code == 2
    assert "training the demo run failed (exit 3)" in result.output


def test_demo_command_opens_compare_on_the_run(monkeypatch, tmp_path):
    opened = []
    monkeypatch.setattr("deepdive.commands.demo.ensure_run", lambda run: tmp_path / run)

    def run(self, *a, **k):
        opened.append(self)

    from tui.app import DeepdiveApp

    monkeypatch.setattr(DeepdiveApp, "run", run)
    result = CliRunner().invoke(cli, ["demo", "--run", "mine", "--fps", "12", "--no-animation"])
    assert result.exit_code == 0, result.output
    app = opened[0]
    assert app.start_tab == "compare" and app.run_name == "mine"
    assert app.animation_level == "none"


FIRST_FRAME = r"""
import json, sys, time
import tui.app as ta
class Timed(ta.DeepdiveApp):
    CSS_PATH = ta.__file__.replace("app.py", "app.tcss")  # relative paths need a source file
    def on_ready(self) -> None:
        print(json.dumps({"torch": "torch" in sys.modules}), flush=True)
        self.exit()
    def run(self, **kw):
        return super().run(headless=True, size=(80, 24))
ta.DeepdiveApp = Timed
import deepdive.commands.demo
deepdive.commands.demo.ensure_run = lambda run: None
from deepdive.cli import app
app(["demo"], standalone_mode=False)
"""


def test_demo_first_frame_comes_before_torch_is_imported():
    out = subprocess.run([sys.executable, "-c", FIRST_FRAME], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
    assert lines, out.stderr[-3000:]
    assert json.loads(lines[-1]) == {"torch": False}


def test_demo_command_quotes_its_arguments():
    cmd = demo_command("my run")
    assert cmd.endswith("demo --run 'my run' --read-only")
