"""The import boundaries: the contracts in pyproject.toml ([tool.importlinter]) hold, checked by
`lint-imports` over this checkout; and importing every engine module leaves textual unloaded,
checked in a fresh interpreter (textual imported by another test would hide an import here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    """This checkout first on the path, whatever an editable install points at."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def _lint_imports() -> str | None:
    beside = Path(sys.executable).with_name("lint-imports")
    return str(beside) if beside.exists() else shutil.which("lint-imports")


def test_import_contracts_hold():
    tool = _lint_imports()
    if tool is None:
        pytest.skip("lint-imports not installed (pip install -e '.[dev]' brings import-linter)")
    out = subprocess.run([tool, "--no-cache"], cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]


ALL_ENGINE = """
import importlib, pkgutil, sys
import engine
for info in pkgutil.walk_packages(engine.__path__, "engine."):
    importlib.import_module(info.name)
print(sorted(m for m in sys.modules if m == "engine" or m.startswith("engine.")))
print(any(m == "textual" or m.startswith("textual.") for m in sys.modules))
"""


def test_importing_every_engine_module_leaves_textual_out():
    out = subprocess.run([sys.executable, "-c", ALL_ENGINE], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    imported, textual = out.stdout.splitlines()[-2:]
    for name in ("engine.api", "engine.run", "engine.data.evals", "engine.train.pipeline"):
        assert repr(name) in imported  # the walk reached the modules it is meant to cover
    assert textual == "False"
