"""The Report pane."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static


class ReportPane(Vertical):
    """Not built yet: says what it will show."""

    def compose(self) -> ComposeResult:
        yield Static("The Report pane is not built yet.", classes="placeholder")
