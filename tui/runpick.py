"""Which run and stage a pane opens on: the app's current run (``DeepdiveApp(run=...)``,
``tiny`` by default), never simply the alphabetically first folder.

No textual, no torch: plain functions over ``engine.api.RunInfo``.
"""

from __future__ import annotations

from engine.api import RunInfo, checkpoints_root

DEFAULT_RUN = "tiny"
# The stage Sample opens on: the chat model people came to talk to, else the best there is.
STAGE_PREFERENCE = ("sft", "rl", "base")


def default_run() -> str | None:
    """The app's run when none is named: ``tiny`` when the runs root has it (one stat), else
    None (each pane then falls back to ``open_run``'s choice)."""
    return DEFAULT_RUN if (checkpoints_root() / DEFAULT_RUN).is_dir() else None


def open_run(runs: list[RunInfo], wanted: str | None) -> RunInfo | None:
    """The wanted run if it is there; else a finished run (not training now) with the most
    stages; else any run. None when there are no runs."""
    for r in runs:
        if r.name == wanted:
            return r
    if not runs:
        return None
    return min(runs, key=lambda r: (r.active, -len(r.stages), r.name))


def open_stage(run: RunInfo) -> str | None:
    """The stage Sample opens on: SFT, else RL, else base (None: no model yet)."""
    return next((s for s in STAGE_PREFERENCE if s in run.stages), None)


def run_label(run: RunInfo) -> str:
    """A run's name as pickers show it: a run still training says so."""
    return f"{run.name} (training)" if run.active else run.name


def model_choices(runs: list[RunInfo]) -> list[tuple[RunInfo, str]]:
    """Every (run, stage) that has a model, in the runs' order: what model pickers list."""
    return [(r, s) for r in runs for s in r.stages]


def open_model_run(runs: list[RunInfo], wanted: str | None) -> RunInfo | None:
    """``open_run`` among the runs that have a model (the run a model picker opens on)."""
    return open_run([r for r in runs if r.stages], wanted)


class RootWatch:
    """Has the runs root changed (a run made or removed) since last asked? One stat a call, so
    a pane's timer may ask every tick and re-list the runs only when it has."""

    def __init__(self) -> None:
        self._mtime: object = self  # nothing seen yet: the first call says changed

    def changed(self) -> bool:
        try:
            mtime: float | None = checkpoints_root().stat().st_mtime
        except OSError:
            mtime = None
        seen, self._mtime = self._mtime, mtime
        return mtime != seen
