"""Where exports go: one folder, ``$DEEPDIVE_EXPORT_DIR`` or ``~/deepdive-exports``.

Never the current folder: a user who starts deepdive from a source checkout must not find
export files among their code.
"""

from __future__ import annotations

import os
from pathlib import Path


def export_dir() -> Path:
    """The export folder (made if missing)."""
    raw = os.environ.get("DEEPDIVE_EXPORT_DIR", "").strip()
    path = Path(raw).expanduser() if raw else Path.home() / "deepdive-exports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_export(name: str, text: str) -> Path:
    """Write ``text`` as ``name`` (a file name, no folders) into the export folder; its path."""
    safe = Path(name).name or "export.txt"
    path = export_dir() / safe
    tmp = path.with_name(f".{safe}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
