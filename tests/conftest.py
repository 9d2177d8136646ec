"""Shared test fixtures.

``micro_run``: a finished run of the ``micro`` preset (every stage, report.json included), made
once per test session by the real trainer in a temporary folder. UI and CLI tests open it.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def micro_run(tmp_path_factory) -> Path:
    from engine.train.pipeline import train

    run_dir = tmp_path_factory.mktemp("runs") / "micro"
    train(run_dir, preset="micro", seed=0, device="cpu")
    return run_dir


@pytest.fixture
def anyio_backend():
    return "asyncio"  # the async UI tests (Textual's Pilot) run on asyncio


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """An empty checkpoints folder, made the runs root through DEEPDIVE_CHECKPOINTS."""
    root = tmp_path / "checkpoints"
    root.mkdir()
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(root))
    return root


@pytest.fixture(autouse=True)
def _writable_exports(monkeypatch):
    """A read-only app marks its process read-only (tui/exports.py); each test starts
    writable and any such mark is undone after it."""
    monkeypatch.setenv("DEEPDIVE_READ_ONLY", "")
