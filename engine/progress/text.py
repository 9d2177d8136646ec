"""A run's progress as plain strings: numbers, durations, rates, a stage's one-line status.

Every front end says the same thing the same way: the Train pane (which adds colour), the
``deepdive train`` display and ``deepdive runs``. Plain ``str`` only: no textual, no rich, no
torch. The functions read a ``RunState`` / ``StageState`` (``engine/progress/state.py``) but
never change one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.progress.state import RunState, StageState

# The figure that best sums up a finished stage, in order of preference.
HEADLINE_KEYS = ("val_loss", "heldout_pass1", "arith_pass1_rl", "pass1", "reward", "loss",
                 "n_vocab", "vocab_size")
HEADLINE_LABELS = {"val_loss": "val loss", "heldout_pass1": "held-out pass@1",
                   "arith_pass1_rl": "arith RL pass@1", "pass1": "pass@1", "n_vocab": "vocab",
                   "vocab_size": "vocab"}
# The mark a stage's status line starts with.
STATUS_MARKS = {"running": "▶", "done": "✓", "failed": "✗", "stopped": "■"}


def num(value: Any) -> float | None:
    """``value`` as a finite float; None for anything else (missing, bool, text, nan, inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)


def fmt_num(value: Any) -> str:
    """Numbers as people read them; anything missing or odd is "—"."""
    v = num(value)
    if v is None:
        return "—"
    if float(v).is_integer() and abs(v) < 1e9:
        return str(int(v))
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_duration(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``; "—" when unknown."""
    if seconds is None:
        return "—"
    s = int(seconds)
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


def fmt_rate(tok_s: float | None) -> str:
    if tok_s is None:
        return "—"
    return f"{tok_s / 1000:.1f}k" if tok_s >= 1000 else f"{tok_s:.0f}"


def fmt_mfu(mfu: float | None) -> str:
    if mfu is None:
        return "—"
    return f"{mfu * 100:.1f}%" if mfu <= 1 else f"{mfu:.1f}%"


def fmt_bytes(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**20:.0f} MB"


def headline(summary: dict[str, Any]) -> str | None:
    """A finished stage's figure from its summary, e.g. "val loss 2.31" (None: no number)."""
    for key in HEADLINE_KEYS:
        if num(summary.get(key)) is not None:
            return f"{HEADLINE_LABELS.get(key, key)} {fmt_num(summary[key])}"
    for key, value in summary.items():
        if num(value) is not None:
            return f"{key} {fmt_num(value)}"
    return None


def eta_text(st: StageState | None) -> str:
    """"ETA m:ss" at the stage's pace so far ("ETA —" until there is a pace)."""
    return f"ETA {fmt_duration(st.eta_s() if st else None)}"


def stage_status(st: StageState, run_ended: bool) -> str:
    """One stage in a few words: "▶ 40% ETA 0:12", "✓ val loss 2.31", "■ stopped at 23", …"""
    mark = STATUS_MARKS.get(st.status)
    if st.status == "running":
        pct = st.fraction
        text = f"{mark} " + (f"{pct * 100:.0f}%" if pct is not None else f"step {fmt_num(st.step)}")
        eta = st.eta_s()
        return text + (f" ETA {fmt_duration(eta)}" if eta is not None else "")
    if st.status == "done":
        return f"{mark} " + (st.headline() or "done")
    if st.status == "failed":
        return f"{mark} " + (st.error or "failed")
    if st.status == "stopped":
        return f"{mark} stopped at {fmt_num(st.step)}"
    return "– skipped" if run_ended else "· waiting"


def shown_stage(state: RunState) -> StageState | None:
    """The stage the figures are about: the running one, else the latest one named."""
    st = state.running_stage
    if st is None and state.current:
        st = state.stages.get(state.current)
    return st


def stats_parts(state: RunState, now: float | None = None) -> list[str]:
    """The live figures: stage and step, tok/s, MFU, time trained, ETA."""
    st = shown_stage(state)
    step = f"{fmt_num(st.step)}/{fmt_num(st.total)}" if st else "—"
    return [
        f"{st.name if st else 'step'} {step}",
        f"{fmt_rate(state.tok_s)} tok/s",
        f"MFU {fmt_mfu(state.mfu)}",
        f"trained {fmt_duration(state.training_s(now))}",
        eta_text(st),
    ]


def run_status(state: RunState) -> str:
    """How the run stands in a few words: finished / failed / stopped / training / …"""
    if state.n_events == 0:
        return "no events yet"
    if state.error:
        return f"failed: {state.error}"
    if state.unexpected_stop():
        return state.unexpected_stop() or ""
    if state.end_status == "stopped":
        return state.end_reason or "stopped (saved)"
    if state.end_status:
        return "finished"
    if state.alive:
        return "training"
    return "not finished"


def stage_done_line(st: StageState) -> str:
    """The line a finished stage leaves: "pretrain  done in 12.3s  val loss 2.31"."""
    spent = num(st.summary.get("elapsed_s"))
    line = f"{st.name:<9} done in {spent or 0:.1f}s"
    figure = st.headline()
    return f"{line}  {figure}" if figure else line
