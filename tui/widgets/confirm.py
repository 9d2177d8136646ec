"""A yes/no question as a modal: for actions that cost a lot or cannot be undone (starting a
long training run, stopping a trainer another terminal started).

``app.push_screen(Confirm(question, yes="Start"), callback)``: the callback gets True (Enter
or y on the yes button) or False (Esc, n, the no button). The no button has focus first, so a
stray Enter never confirms by accident.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class Confirm(ModalScreen[bool]):
    BINDINGS = [
        Binding("escape,n", "answer(False)", "No"),
        Binding("y", "answer(True)", "Yes"),
    ]
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical {
        width: 64; max-width: 100%; height: auto; padding: 1 2;
        border: round $warning; background: $surface;
    }
    Confirm #confirm-text { height: auto; margin-bottom: 1; }
    Confirm Horizontal { height: auto; align-horizontal: right; }
    Confirm Button { margin-left: 2; }
    """

    def __init__(self, question: str, yes: str = "Yes", no: str = "Cancel",
                 title: str = "Confirm") -> None:
        super().__init__()
        self.question, self.yes, self.no, self.title_text = question, yes, no, title

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            yield Static(self.question, id="confirm-text")
            with Horizontal():
                yield Button(f"{self.no} (n)", id="confirm-no", compact=True)
                yield Button(f"{self.yes} (y)", id="confirm-yes", variant="warning",
                             compact=True)

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
