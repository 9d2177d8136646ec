"""The app's panes, in tab order, and how to reach their classes and key bindings.

Kept apart from tui/app.py so that the help screen (tui/help.py) can list the panes without
importing the app that opens it. Pane modules are imported only when `pane_class` is called.
"""

from __future__ import annotations

import importlib

from textual.binding import Binding

# (key, title, "module:class"): pane classes are imported on first use (see pane_class).
PANES = [
    ("tokens", "Tokens", "tui.panes.tokens:TokensPane"),
    ("sample", "Sample", "tui.panes.sample:SamplePane"),
    ("train", "Train", "tui.panes.train:TrainPane"),
    ("compare", "Compare", "tui.panes.compare:ComparePane"),
    ("report", "Report", "tui.panes.report:ReportPane"),
]
PANE_KEYS = [key for key, _, _ in PANES]


def pane_class(key: str) -> type:
    """The pane class for key, imported now (the first frame imports only the first pane)."""
    spec = next(spec for k, _, spec in PANES if k == key)
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def bindings_of(cls) -> list[Binding]:
    """Every binding a class declares in BINDINGS, tuples made Bindings."""
    return [Binding(*b) if isinstance(b, tuple) else b for b in getattr(cls, "BINDINGS", [])]


def pane_bindings(pane_cls) -> list[Binding]:
    """The described bindings a pane class declares (the help screen and palette list these)."""
    return [b for b in bindings_of(pane_cls) if isinstance(b, Binding) and b.description]
