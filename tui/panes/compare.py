"""The Compare pane."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static


class ComparePane(Vertical):
    """Not built yet: says what it will show."""

    def compose(self) -> ComposeResult:
        yield Static("The Compare pane is not built yet.", classes="placeholder")
