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
