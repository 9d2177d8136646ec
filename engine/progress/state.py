"""What a run looks like right now, folded from its ``events.jsonl``: the one reducer.

``RunState.apply(event)`` for each event of ``engine/progress/events.py`` (in file order) keeps
per-stage status, compact curves (``Series``), the latest samples, throughput and the pace a
stage's ETA comes from. A pure function of the events: no files, no clocks but the ones asked
for by ``now``. Every front end folds with it: the Train pane (through ``RunWatch``,
``engine/progress/watch.py``, which follows the file and asks the run lock whether a trainer
lives), ``deepdive train``'s display and ``deepdive runs``. What they print is in
``engine/progress/text.py``.

Events are read defensively: any field may be missing (it stays ``None``, shown as "—").
No textual, no torch.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from engine.progress.text import fmt_num, headline
from engine.progress.text import num as _num
from engine.run import STAGE_NAMES

# The pipeline in the order a run goes through it; stages not listed here are shown after them.
STAGE_ORDER = STAGE_NAMES  # engine.run.PIPELINE, the run-folder contract
# Fields of a ``step`` event that become curves (RL adds reward, pass1, resp_len).
STEP_SERIES = ("loss", "reward", "pass1", "resp_len", "proxy", "kl")
# Fields of an ``eval`` event that are bookkeeping, not metrics.
_NOT_METRICS = frozenset({"t", "type", "stage", "step", "total_steps", "elapsed_s"})


class Series:
    """A curve kept to at most ``cap`` points: once full, neighbours are averaged in pairs and
    later points are averaged in buckets twice as wide, so 100k steps cost the same as 1k."""

    __slots__ = ("xs", "ys", "cap", "bucket", "_n", "_sx", "_sy", "last")

    def __init__(self, cap: int = 1024):
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.cap = cap
        self.bucket = 1
        self._n = 0  # points waiting in the open bucket
        self._sx = 0.0
        self._sy = 0.0
        self.last: float | None = None  # the latest raw value, never averaged

    def append(self, x: float, y: float) -> None:
        self.last = y
        self._n += 1
        self._sx += x
        self._sy += y
        if self._n < self.bucket:
            return
        self.xs.append(self._sx / self._n)
        self.ys.append(self._sy / self._n)
        self._n, self._sx, self._sy = 0, 0.0, 0.0
        if len(self.xs) >= self.cap:
            self._halve()

    def _halve(self) -> None:
        xs, ys = self.xs, self.ys
        self.xs = [(xs[i] + xs[i + 1]) / 2 for i in range(0, len(xs) - 1, 2)]
        self.ys = [(ys[i] + ys[i + 1]) / 2 for i in range(0, len(ys) - 1, 2)]
        if len(xs) % 2:
            self.xs.append(xs[-1])
            self.ys.append(ys[-1])
        self.bucket *= 2

    def truncate_from(self, x: float) -> None:
        """Drop points at or after ``x`` (a resume went back to an earlier checkpoint)."""
        keep = len(self.xs)
        while keep and self.xs[keep - 1] >= x:
            keep -= 1
        del self.xs[keep:], self.ys[keep:]
        self._n, self._sx, self._sy = 0, 0.0, 0.0

    def points(self) -> tuple[list[float], list[float]]:
        """All points, including the open bucket's average."""
        if not self._n:
            return self.xs, self.ys
        return self.xs + [self._sx / self._n], self.ys + [self._sy / self._n]

    def __len__(self) -> int:
        return len(self.xs) + (1 if self._n else 0)


@dataclass
class StageState:
    name: str
    status: str = "waiting"  # waiting | running | done | failed | stopped
    step: int | None = None
    total: int | None = None
    t_start: float | None = None  # first event of this (possibly resumed) stretch
    step_start: int | None = None
    t_last: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def fraction(self) -> float | None:
        if self.step is None or not self.total:
            return None
        return max(0.0, min(1.0, self.step / self.total))

    def eta_s(self) -> float | None:
        """Seconds left at the pace of this stretch so far (None until there is a pace)."""
        if self.status != "running" or None in (self.step, self.total, self.t_start, self.t_last):
            return None
        done = self.step - (self.step_start or 0)
        spent = self.t_last - self.t_start
        if done <= 0 or spent <= 0:
            return None
        return max(0.0, (self.total - self.step) * spent / done)

    def headline(self) -> str | None:
        """The stage's final figure, e.g. "val_loss 2.31"."""
        return headline(self.summary)


@dataclass
class Sample:
    stage: str | None
    step: int | None
    prompt: str
    text: str


class RunState:
    """Everything the Train pane shows, folded from events."""

    def __init__(self, max_samples: int = 12, series_cap: int = 1024):
        self.stages: dict[str, StageState] = {}
        self.series: dict[tuple[str, str], Series] = {}
        self.samples: deque[Sample] = deque(maxlen=max_samples)
        self.series_cap = series_cap
        self.preset: str | None = None
        self.seed: int | None = None
        self.pid: int | None = None
        self.t_start: float | None = None
        self.t_last: float | None = None
        self.current: str | None = None  # the stage the latest step/stage_start named
        self.tok_s: float | None = None
        self.mfu: float | None = None
        self.lr: float | None = None
        self.stage_elapsed_s: float | None = None
        self.last_eval: dict[str, float] = {}  # the latest eval event's figures
        self.last_step: int | None = None
        self.last_checkpoint: str | None = None
        self.end_status: str | None = None  # run_end's status: "done" | "stopped"
        self.end_reason: str | None = None  # run_end's reason, e.g. where it stopped and saved
        self.error: str | None = None
        self.stop_note: str | None = None  # set by mark_dead
        self.alive: bool | None = None  # a trainer holds the lock (None: not asked yet)
        self.n_events = 0
        self.version = 0  # bumps on every change, so a view redraws only when needed
        for name in STAGE_ORDER[:4] + ("eval",):
            self.stages[name] = StageState(name)

    # ---- folding -------------------------------------------------------------------------

    def apply_all(self, events: list[dict[str, Any]]) -> None:
        apply = self.apply
        for event in events:
            apply(event)

    def apply(self, event: dict[str, Any]) -> None:
        handler = _HANDLERS.get(event.get("type"))
        self.n_events += 1
        self.version += 1
        t = _num(event.get("t"))
        if t is not None:
            self.t_last = t
            if self.t_start is None:
                self.t_start = t
        if handler is not None:
            handler(self, event)
        if self.stop_note and not self.ended:  # events still coming: it was not dead after all
            self.stop_note = None

    def stage(self, name: Any) -> StageState:
        name = str(name) if name else "?"
        st = self.stages.get(name)
        if st is None:
            st = self.stages[name] = StageState(name)
        return st

    def curve(self, stage: str, name: str) -> Series | None:
        return self.series.get((stage, name))

    def _add_point(self, stage: str, name: str, x: float, y: Any) -> None:
        v = _num(y)
        if v is None:
            return
        s = self.series.get((stage, name))
        if s is None:
            s = self.series[(stage, name)] = Series(self.series_cap)
        s.append(x, v)

    def _on_run_start(self, e: dict[str, Any]) -> None:
        self.preset = e.get("preset", self.preset)
        self.seed = e.get("seed", self.seed)
        self.pid = e.get("pid") if isinstance(e.get("pid"), int) else self.pid
        self.end_status = None
        self.error = self.stop_note = None
        for name in e.get("stages") or []:
            self.stage(name)
        for st in self.stages.values():  # a resumed run: what failed or stopped runs again
            if st.status in ("failed", "stopped"):
                st.status, st.error = "waiting", None

    def _on_stage_start(self, e: dict[str, Any]) -> None:
        st = self.stage(e.get("stage"))
        st.status, st.error = "running", None
        st.total = e.get("total_steps", st.total)
        step = e.get("step")
        st.step = step if isinstance(step, int) else (st.step or 0)
        st.t_start = st.t_last = _num(e.get("t"))
        st.step_start = st.step
        self.current = st.name
        self.tok_s = self.mfu = None  # figures of the previous stage no longer apply
        for (stage, _), series in self.series.items():
            if stage == st.name:
                series.truncate_from(st.step + 1)

    def _on_step(self, e: dict[str, Any]) -> None:
        st = self.stage(e.get("stage") or self.current)
        step = e.get("step")
        if not isinstance(step, int):
            return
        if st.status in ("waiting", "stopped"):  # joined mid-stage, or it was thought dead
            st.status, st.t_start, st.step_start = "running", _num(e.get("t")), step
        st.step, st.t_last = step, _num(e.get("t"))
        if e.get("total_steps"):
            st.total = e["total_steps"]
        self.current, self.last_step = st.name, step
        self.tok_s = _num(e.get("tok_s")) if "tok_s" in e else self.tok_s
        self.mfu = _num(e.get("mfu")) if "mfu" in e else self.mfu
        self.lr = _num(e.get("lr")) if "lr" in e else self.lr
        self.stage_elapsed_s = _num(e.get("elapsed_s"))
        for key in STEP_SERIES:
            if key in e:
                self._add_point(st.name, key, step, e[key])

    def _on_eval(self, e: dict[str, Any]) -> None:
        stage = str(e.get("stage") or self.current or "?")
        step = e.get("step")
        x = step if isinstance(step, int) else (self.stage(stage).step or 0)
        figures = {}
        for key, value in e.items():  # val_loss, heldout_pass1, ... (``val_`` keeps them apart
            if key not in _NOT_METRICS:  # from a step's own loss / pass1)
                self._add_point(stage, f"val_{key}" if key in STEP_SERIES else key, x, value)
                if _num(value) is not None:
                    figures[key] = float(value)
        self.last_eval = figures

    def _on_sample(self, e: dict[str, Any]) -> None:
        prompt, text = str(e.get("prompt") or ""), str(e.get("text") or "")
        self.samples.append(Sample(e.get("stage"), e.get("step"), prompt, text))

    def _on_checkpoint(self, e: dict[str, Any]) -> None:
        path = e.get("path")
        if path:
            self.last_checkpoint = str(path)

    def _on_stage_end(self, e: dict[str, Any]) -> None:
        st = self.stage(e.get("stage") or self.current)
        st.status = "done"
        if isinstance(e.get("step"), int):
            st.step = e["step"]
        if isinstance(e.get("summary"), dict):
            st.summary = e["summary"]

    def _on_error(self, e: dict[str, Any]) -> None:
        st = self.stage(e.get("stage") or self.current)
        st.status = "failed"
        st.error = str(e.get("message") or "error (no message)")
        if isinstance(e.get("step"), int):
            st.step = e["step"]
        self.error = f"{st.name}: {st.error}"
        if e.get("last_checkpoint"):
            self.last_checkpoint = str(e["last_checkpoint"])

    def _on_run_end(self, e: dict[str, Any]) -> None:
        self.end_status = str(e.get("status") or "done")
        self.end_reason = str(e["reason"]) if e.get("reason") else None
        for st in self.stages.values():
            if st.status == "running":
                st.status = "stopped" if self.end_status != "done" else "done"

    # ---- what the view asks -------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.end_status is not None or self.error is not None

    @property
    def running_stage(self) -> StageState | None:
        for st in self.stages.values():
            if st.status == "running":
                return st
        return None

    def ordered_stages(self) -> list[StageState]:
        rank = {name: i for i, name in enumerate(STAGE_ORDER)}
        return sorted(self.stages.values(), key=lambda s: rank.get(s.name, len(rank)))

    def unexpected_stop(self) -> str | None:
        """"stopped unexpectedly at step N" once the events stopped without an end and no
        trainer holds the lock (see ``mark_dead``); None otherwise."""
        return self.stop_note

    def mark_dead(self) -> None:
        """The trainer is gone: if it left no ``error`` / ``run_end``, say where it stopped."""
        if self.stop_note or self.ended or self.n_events == 0:
            return
        st = self.running_stage
        step = st.step if st else self.last_step
        where = f"{st.name} " if st else ""
        ckpt = self.last_checkpoint or "none saved"
        self.stop_note = (
            f"stopped unexpectedly at {where}step {fmt_num(step)} (last checkpoint: {ckpt})"
        )
        if st:
            st.status, st.error = "stopped", "stopped unexpectedly"
        self.version += 1

    def latest(self, name: str, stage: str | None = None) -> float | None:
        """The latest raw value of a step/eval figure of ``stage`` (default: the current one)."""
        series = self.series.get((stage or self.current or "?", name))
        return series.last if series is not None else None

    def training_s(self, now: float | None = None) -> float | None:
        """Time spent training, summed over stages (each stage's own clock, resumes included),
        not the wall clock since the run began: a run resumed a day later trained for minutes.
        ``now`` (default: the clock) only moves a stage a living trainer is running."""
        total, seen = 0.0, False
        for st in self.ordered_stages():
            spent = _num(st.summary.get("elapsed_s")) if st.status == "done" else None
            if spent is None and st.name == self.current and self.stage_elapsed_s is not None:
                spent = self.stage_elapsed_s  # the stage's clock at its latest step
                if st.status == "running" and self.alive and st.t_last:
                    spent += max(0.0, (now or time.time()) - st.t_last)
            if spent is None and st.t_start is not None and st.t_last is not None:
                spent = max(0.0, st.t_last - st.t_start)
            if spent is not None:
                total, seen = total + spent, True
        return total if seen else None

    def run_elapsed_s(self, now: float | None = None) -> float | None:
        if self.t_start is None:
            return None
        end = (now or time.time()) if self.alive else self.t_last
        return max(0.0, (end or self.t_start) - self.t_start)


_HANDLERS = {
    "run_start": RunState._on_run_start,
    "stage_start": RunState._on_stage_start,
    "step": RunState._on_step,
    "eval": RunState._on_eval,
    "sample": RunState._on_sample,
    "checkpoint": RunState._on_checkpoint,
    "stage_end": RunState._on_stage_end,
    "error": RunState._on_error,
    "run_end": RunState._on_run_end,
}

