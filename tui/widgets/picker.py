"""A Select that says when its list closes, so a pane can hand focus back to its text box.

Textual's Select keeps focus after a choice; a key typed next then reopens the list (or
searches it) instead of reaching the text the user meant to type into.
"""

from __future__ import annotations

from textual.message import Message
from textual.widgets import Select


class Picker(Select):
    class Closed(Message):
        """The list closed (a choice made, or Esc)."""

        def __init__(self, picker: Picker) -> None:
            super().__init__()
            self.picker = picker

        @property
        def control(self) -> Picker:
            return self.picker

    def _watch_expanded(self, expanded: bool) -> None:
        super()._watch_expanded(expanded)
        if not expanded:
            # after Select has re-focused itself (it does so right after closing the list)
            self.call_after_refresh(self.post_message, self.Closed(self))


def refill(select: Select, options: list[tuple]) -> bool:
    """Give ``select`` new ``(label, value)`` options, keeping its value if still offered (Select
    forgets it). True when it was kept; a caller that wants no Changed wraps this in
    ``prevent(Select.Changed)``."""
    current = select.value
    select.set_options(options)
    if current is not Select.NULL and any(value == current for _, value in options):
        select.value = current
        return True
    return False
