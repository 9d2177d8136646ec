"""The help screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# deepdive

F2–F6 switch panes (Tokens, Sample, Train, Compare, Report). Ctrl+P opens the command palette.
Ctrl+Q quits. Esc closes this screen.
"""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        yield Markdown(HELP)
