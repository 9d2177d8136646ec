"""Importing the app and drawing its first frame on the Tokens pane never imports torch
(over a second to import: docs/measurements.md), nor does loading cl100k and showing its
tokens. Each check runs in a fresh interpreter: torch imported by another test would hide an
import here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

IMPORT_ONLY = """
import json, sys
import tui.app
print(json.dumps({"torch": "torch" in sys.modules}))
"""

FIRST_FRAME = r"""
import json, sys
import tui.app as ta

seen = {}

class Probe(ta.DeepdiveApp):
    def on_ready(self) -> None:
        seen["first_frame"] = "torch" in sys.modules
        self.set_interval(0.05, self.check)

    def check(self) -> None:
        column = self.query_one("#tok-a")
        if column.analysis is not None:  # cl100k loaded, the example text shown as chips
            seen["tokens_shown"] = "torch" in sys.modules
            seen["n_tokens"] = len(column.analysis.ids)
            from tui.panes.tokens import encoding_choices  # what the picker lists

            seen["choices"] = [value for _, value in encoding_choices()]
            seen["after_choices"] = "torch" in sys.modules
            self.exit()

Probe().run(headless=True, size=(80, 24))
print(json.dumps(seen))
"""


def run_child(code: str, runs_root) -> dict:
    env = {**os.environ, "DEEPDIVE_CHECKPOINTS": str(runs_root)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
    assert out.returncode == 0 and lines, out.stderr[-3000:]
    return json.loads(lines[-1])


def test_importing_the_app_does_not_import_torch(tmp_path):
    assert run_child(IMPORT_ONLY, tmp_path) == {"torch": False}


def test_first_frame_and_tokens_pane_do_not_import_torch(tmp_path):
    seen = run_child(FIRST_FRAME, tmp_path)
    assert seen["first_frame"] is False
    assert seen["tokens_shown"] is False and seen["n_tokens"] > 0
    assert seen["choices"][:2] == ["cl100k_base", "o200k_base"] and not seen["after_choices"]


def test_a_runs_tokenizer_in_the_picker_does_not_import_torch(tmp_path):
    """With a run in the runs root, the picker lists its tokenizer: still no torch."""
    from engine.tokens.tokenizer import train_bpe

    run = tmp_path / "toy"
    train_bpe(["hello world, the tokens pane"] * 20, vocab_size=300).save(run / "tokenizer.json")
    seen = run_child(FIRST_FRAME, tmp_path)
    assert "toy" in seen["choices"]
    assert seen["first_frame"] is False and seen["tokens_shown"] is False
    assert seen["after_choices"] is False
