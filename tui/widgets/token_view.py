"""TokenView: token chips drawn with Textual's Line API.

Only the visible lines are drawn (`render_line`), from a layout computed once per text, width or
ids change — so 20k tokens scroll as smoothly as 20. A Static holding one styled span per token
would be rebuilt whole on every keystroke and falls to a few dozen updates a second at 3k tokens.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.widgets.chips import Chip, Layout, layout_chips

# Pastel backgrounds, alternating lighter and darker, so neighbours differ even in greyscale
# (NO_COLOR turns the app monochrome). Dark text reads on all of them in any theme.
PALETTE = ["#a8d8ff", "#e0a3c8", "#c4f0b0", "#e8b27d", "#f5e6a1", "#a9a1e8", "#b0ecec", "#e89a9a"]
INK = "#1b1b1b"
ID_INK = "#4a4a4a"


def _chip_styles() -> list[tuple[Style, Style]]:
    return [
        (Style(color=INK, bgcolor=bg), Style(color=ID_INK, bgcolor=bg, italic=True))
        for bg in PALETTE
    ]


CHIP_STYLES = _chip_styles()
SPECIAL_STYLE = Style(color="#ffffff", bgcolor="#7a2ea8", bold=True)
SPECIAL_ID_STYLE = Style(color="#e6d0f5", bgcolor="#7a2ea8", italic=True)
SELECTED = Style(reverse=True, bold=True, underline=True)


class TokenView(ScrollView, can_focus=True):
    """Chips for a list of tokens; arrows or a click select one (posts `TokenView.Selected`)."""

    DEFAULT_CSS = """
    TokenView {
        height: 1fr;
        background: $surface;
        scrollbar-gutter: stable;
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
    }
    TokenView:focus { background-tint: $foreground 4%; }
    TokenView > .token-view--placeholder { color: $text-muted; text-style: italic; }
    """
    COMPONENT_CLASSES = {"token-view--placeholder"}
    BINDINGS = [
        Binding("left", "move(-1)", "Prev token", show=False),
        Binding("right", "move(1)", "Next token", show=False),
        Binding("up", "move_line(-1)", "Line up", show=False),
        Binding("down", "move_line(1)", "Line down", show=False),
        Binding("home", "select(0)", "First", show=False),
        Binding("end", "select(-1)", "Last", show=False),
        Binding("escape", "select(None)", "Clear selection", show=False),
    ]

    show_ids: reactive[bool] = reactive(False)
    cursor: reactive[int | None] = reactive(None)

    class Selected(Message):
        def __init__(self, view: TokenView, index: int | None, chip: Chip | None) -> None:
            super().__init__()
            self.view = view
            self.index = index
            self.chip = chip

        @property
        def control(self) -> TokenView:
            return self.view

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.chips: list[Chip] = []
        self.placeholder = ""
        self._layout = Layout([[]], [], 0)
        self._layout_width = -1

    # --- data -----------------------------------------------------------------------------

    def set_chips(self, chips: list[Chip], placeholder: str = "",
                  layout: tuple[int, bool, Layout] | None = None) -> None:
        """Show new chips; keeps the selection when that token still exists. `layout` is
        (width, show_ids, layout) made off the UI thread for long texts (see `layout_width`);
        it is used when it still fits the view, else the chips are laid out again here."""
        self.chips = chips
        self.placeholder = placeholder
        if self.cursor is not None and self.cursor >= len(chips):
            self.cursor = len(chips) - 1 if chips else None
        if layout is not None and layout[:2] == (self.layout_width, self.show_ids):
            self._set_layout(layout[2], layout[0])
        else:
            self._relayout()
        self.post_message(self.Selected(self, self.cursor, self.selected_chip))

    @property
    def selected_chip(self) -> Chip | None:
        return self.chips[self.cursor] if self.cursor is not None else None

    @property
    def layout_lines(self) -> int:
        return len(self._layout.lines)

    def line_text(self, y: int) -> str:
        """The plain text of laid-out line y (for tests and screen readers)."""
        return "".join(text for text, _, _ in self._layout.lines[y])

    @property
    def layout_width(self) -> int:
        """The width chips are wrapped to now."""
        return self.scrollable_content_region.width or 80

    def _relayout(self) -> None:
        width = self.layout_width
        self._set_layout(layout_chips(self.chips, width, self.show_ids), width)

    def _set_layout(self, layout: Layout, width: int) -> None:
        self._layout = layout
        self._layout_width = width
        self.virtual_size = Size(self._layout.width, len(self._layout.lines))
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        if self.scrollable_content_region.width != self._layout_width:
            self._relayout()

    def watch_show_ids(self) -> None:
        self._relayout()
        self._scroll_to_cursor()

    # --- drawing --------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        line = scroll_y + y
        if not self.chips:
            if line == 0 and self.placeholder:
                style = self.get_component_rich_style("token-view--placeholder")
                return Strip([Segment(self.placeholder, style)]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        if line >= len(self._layout.lines):
            return Strip.blank(width, base)
        segments = []
        for text, index, is_id in self._layout.lines[line]:
            chip = self.chips[index]
            if chip.special:
                style = SPECIAL_ID_STYLE if is_id else SPECIAL_STYLE
            else:
                style = CHIP_STYLES[index % len(CHIP_STYLES)][is_id]
            if index == self.cursor:
                style = style + SELECTED
            segments.append(Segment(text, style))
        return Strip(segments).crop_extend(scroll_x, scroll_x + width, base)

    # --- selection ------------------------------------------------------------------------

    def watch_cursor(self, old: int | None, new: int | None) -> None:
        self.refresh()
        self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        if self.cursor is None or not self.chips:
            return
        y = self._layout.chip_line[self.cursor]
        self.scroll_to_region(Region(0, y, 1, 1), animate=False, immediate=True)

    def select(self, index: int | None) -> None:
        if not self.chips or index is None:
            self.cursor = None
        else:
            self.cursor = index % len(self.chips) if index < 0 else min(index, len(self.chips) - 1)
        self.post_message(self.Selected(self, self.cursor, self.selected_chip))

    def action_select(self, index: int | None) -> None:
        self.select(index)

    def action_move(self, delta: int) -> None:
        if not self.chips:
            return
        if self.cursor is None:
            self.select(0 if delta > 0 else -1)
        else:
            self.select(max(0, min(len(self.chips) - 1, self.cursor + delta)))

    def action_move_line(self, delta: int) -> None:
        """Up/down: the chip on the neighbouring line nearest the current column."""
        if not self.chips:
            return
        if self.cursor is None:
            self.select(0)
            return
        lay = self._layout
        y = lay.chip_line[self.cursor] + delta
        # skip lines that hold only the tail of a chip started above (wrapped long tokens)
        while 0 <= y < len(lay.lines) and not any(
            lay.chip_line[c] == y for _, _, c in lay.spans(y)
        ):
            y += delta
        if not 0 <= y < len(lay.lines):
            return
        x = lay.chip_x(self.cursor)
        starts = [(x0, c) for x0, _, c in lay.spans(y) if lay.chip_line[c] == y]
        self.select(min(starts, key=lambda s: abs(s[0] - x))[1])

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        x, y = offset.x + self.scroll_offset.x, offset.y + self.scroll_offset.y
        index = self._layout.chip_at(x, y)
        if index is not None:
            self.focus()
            self.select(index)
