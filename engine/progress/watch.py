"""Following a run folder: ``RunWatch`` reads the new lines of its ``events.jsonl`` into a
``RunState`` (``engine/progress/state.py``) and asks the run lock whether a trainer is alive, so a
trainer that died without an ``error`` / ``run_end`` event shows as "stopped unexpectedly at step
N". It stats the file first and reads only new bytes; a long backlog is caught up fast.

No textual, no torch.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from engine.progress.events import EVENTS_FILE, EventFollower
from engine.progress.state import RunState
from engine.run import is_run_active

# How EventWriter (json.dumps, default separators) writes a step event's type; a line that
# differs is simply parsed in full.
STEP_MARK = b'"type": "step"'
CATCH_UP_BYTES = 1 << 20  # a backlog larger than this is read by RunWatch._catch_up


class RunWatch:
    """Follows one run folder: ``refresh()`` reads new events when the file grew and re-asks
    the lock whether the trainer lives at most every ``alive_every_s``. Cheap when idle: one
    ``stat`` per call."""

    def __init__(self, run_dir: str | Path, alive_every_s: float = 1.0):
        self.run_dir = Path(run_dir)
        self.follower = EventFollower(self.run_dir / EVENTS_FILE)
        self.state = RunState()
        self.alive_every_s = alive_every_s
        self._size = -1
        self._alive_checked = 0.0
        self.partial = False  # the file ends in an incomplete line (being written, or cut off)

    def refresh(self, max_bytes: int | None = None, child_alive: bool = False) -> bool:
        """Fold new events in; True when anything the view shows changed. ``child_alive``: the
        caller's own trainer process still runs (it may not have taken the lock yet)."""
        before = self.state.version
        try:
            size = os.stat(self.follower.path).st_size
        except OSError:
            size = 0
        if size != self._size:
            if size < self.follower.offset:  # the file was replaced: start over
                self.follower = EventFollower(self.follower.path)
                self.state = RunState()
                before = -1
            if size - self.follower.offset > CATCH_UP_BYTES:
                self._catch_up()
            else:
                self.state.apply_all(self.follower.poll(max_bytes))
            # a partial trailing line leaves offset < size: read it again next time
            self.partial = self.follower.offset < size
            self._size = -1 if self.partial else size
        now = time.monotonic()
        watching = not self.state.ended or self.state.alive  # until the lock is released
        due = now - self._alive_checked >= self.alive_every_s
        if self.state.alive is None or (watching and due):
            self._alive_checked = now
            alive = child_alive or is_run_active(self.run_dir)
            if alive != self.state.alive:
                self.state.alive = alive
                self.state.version += 1
            if not alive:
                self.state.mark_dead()
        return self.state.version != before

    def _catch_up(self) -> None:
        """Read a long backlog fast (figures: docs/measurements.md).

        Parsing a JSON line is the cost and curves keep ~1k points anyway, so only every
        ``stride``-th ``step`` line is parsed, plus the last one before any other event (so
        final figures and stage boundaries are exact). Every other event is parsed. Like
        ``EventFollower.poll``: only complete lines, a partial last line waits for the next call.
        """
        f = self.follower
        with open(f.path, "rb") as fh:
            fh.seek(f.offset)
            data = fh.read()
        end = data.rfind(b"\n")
        if end < 0:
            return
        f.offset += end + 1
        data = data[: end + 1]
        stride = max(1, data.count(STEP_MARK) // (4 * self.state.series_cap))
        apply, loads = self.state.apply, json.loads
        n_step, held = 0, None  # held: the latest step line not parsed yet

        def parse(raw: bytes) -> None:
            try:
                event = loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                f.bad_lines += 1
                return
            if isinstance(event, dict) and "type" in event:
                apply(event)
            else:
                f.bad_lines += 1

        for raw in data.split(b"\n"):
            if STEP_MARK in raw:
                n_step += 1
                if n_step % stride:
                    held = raw
                    continue
                held = None
            elif not raw.strip():
                continue
            elif held is not None:
                parse(held)
                held = None
            parse(raw)
        if held is not None:
            parse(held)

    @property
    def bad_lines(self) -> int:
        return self.follower.bad_lines
