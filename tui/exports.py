"""Where screenshots and exports go: one folder, never the current folder or the repository.

``DEEPDIVE_EXPORT_DIR`` names it; by default ``~/deepdive-exports``. Every pane that writes a
file (screenshots, Markdown or JSON exports) calls ``write_export`` (or ``export_dir`` for a
writer of its own, such as Textual's screenshot), so a person finds everything in one place
and the notice always says the full path.

No textual, no torch: the Compare and Report panes and the CLI may call these too.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

ENV = "DEEPDIVE_EXPORT_DIR"
DEFAULT = Path("~/deepdive-exports")
READ_ONLY_ENV = "DEEPDIVE_READ_ONLY"  # set by a read-only (served) app: nothing is written


class ReadOnlyError(PermissionError):
    """Raised instead of writing, in a read-only session (``deepdive serve``)."""


def export_dir(create: bool = True) -> Path:
    """The export folder (``$DEEPDIVE_EXPORT_DIR`` or ``~/deepdive-exports``), made if missing."""
    if os.environ.get(READ_ONLY_ENV):
        raise ReadOnlyError("this is a read-only session (deepdive serve): nothing is written; "
                            "the presenter can allow it with --allow-train")
    raw = os.environ.get(ENV, "").strip()
    path = Path(raw).expanduser() if raw else DEFAULT.expanduser()
    path = path.resolve()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def safe_name(name: str) -> str:
    """A file name from any text: path separators and odd characters become ``-``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return stem or "export"


def stamped(stem: str, suffix: str) -> str:
    """``stem-YYYYmmdd-HHMMSS.suffix``: exports sort by time and rarely collide."""
    return f"{safe_name(stem)}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}"


def write_export(name: str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``name`` in the export folder and return the full path.

    ``name`` is a file name (e.g. ``"compare-tiny.md"``; use ``stamped`` for a time-stamped
    one). An existing file is never overwritten: ``-2``, ``-3`` … go before the suffix.
    Raises OSError when the folder cannot be made or written (say so, keep going).
    """
    folder = export_dir()
    base = Path(safe_name(Path(name).name))
    path = folder / base
    n = 2
    while path.exists():
        path = folder / f"{base.stem}-{n}{base.suffix}"
        n += 1
    # A lone surrogate (pasted text) has no UTF-8 form: write it as a \udXXX escape (valid in a
    # JSON string, visible in Markdown) rather than fail half-way with an empty file left
    path.write_text(text, encoding="utf-8", errors="backslashreplace")
    return path
