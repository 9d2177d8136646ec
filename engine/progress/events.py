"""The run's event log: ``events.jsonl``, append-only, one JSON object per line.

The trainer (a separate process) writes it; the TUI and ``deepdive train`` only read it.
Every event has ``t`` (unix seconds) and ``type``; most have ``stage`` and ``step``.

Types and their usual fields (extra fields are allowed and shown where a pane knows them):

- ``run_start``   pid, preset, stages (list), seed, resumed (bool)
- ``stage_start`` stage ("tokenizer" | "pretrain" | "sft" | "rl" | "control" | "eval"),
                  total_steps, step (start)
- ``step``        stage, step, total_steps, loss, lr, tok_s, mfu, elapsed_s;
                  RL adds reward, pass1, resp_len
- ``eval``        stage, step, and metric fields (val_loss, pass1, ...)
- ``sample``      stage, step, prompt, text
- ``checkpoint``  stage, step, path
- ``stage_end``   stage, step, summary (dict of final figures)
- ``error``       stage, step, message, last_checkpoint (path or null)
- ``run_end``     status ("done" | "stopped")

A reader must survive a half-written last line (the writer may be mid-append, or was killed):
it is left for the next poll, never parsed and never fatal.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from engine.run import EVENTS_FILE  # the run-folder contract names the file


class EventWriter:
    """Appends events; each line goes out in one ``write`` and is flushed: readers see whole
    lines."""

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.path = Path(run_dir) / EVENTS_FILE
        self.enabled = enabled  # False on non-zero DDP ranks: rank 0 alone writes
        self._checked_tail = False

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        event = {"t": round(time.time(), 3), "type": type, **fields}
        if self.enabled:
            line = json.dumps(event, ensure_ascii=False, allow_nan=False, default=_jsonable) + "\n"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self._checked_tail:
                line = self._after_partial_line() + line
                self._checked_tail = True
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        return event


    def try_emit(self, type: str, **fields: Any) -> None:
        """``emit`` where the event reports a failure that may be the disk itself (full,
        read-only): the failure is already being raised to the user, so a log that cannot be
        written is not a second error."""
        try:
            self.emit(type, **fields)
        except OSError:
            pass

    def _after_partial_line(self) -> str:
        """A newline when the file ends mid-line: a writer killed mid-append left a partial last
        line, and our first event must not be glued onto it (readers skip the partial alone)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                return "" if f.read(1) == b"\n" else "\n"
        except OSError:  # no file yet, or an empty one
            return ""


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # torch / numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class EventFollower:
    """Reads new complete lines of an events file since the last poll (like ``tail -f``).

    ``bad_lines`` counts complete lines that were not valid JSON objects (skipped, not fatal).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.offset = 0
        self.bad_lines = 0

    def poll(self, max_bytes: int | None = None) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read() if max_bytes is None else f.read(max_bytes)
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []  # nothing complete yet: a partial line waits for its newline
        self.offset += end + 1
        events = []
        for raw in data[: end + 1].splitlines():
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                self.bad_lines += 1
                continue
            if isinstance(event, dict) and "type" in event:
                events.append(event)
            else:
                self.bad_lines += 1
        return events


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """All complete events of a file (a trailing partial line is ignored)."""
    return EventFollower(path).poll()
