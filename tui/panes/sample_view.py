"""Widgets of the Sample pane: the token stream shaded by probability, and one token's
distribution drawn as bars.

``TokenView`` draws with the Line API (only the visible lines are rendered, each from a small
list of pieces), so a stream of thousands of tokens stays cheap: appending a batch lays out just
the new tokens, and a resize lays everything out again once.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

# Probability bands: (upper bound, background, legend label). Surprising tokens are red,
# confident ones green, so a glance shows where the model hesitated.
BANDS = [
    (0.05, "#8b1a1a", "<5%"),
    (0.20, "#8a4b08", "5–20%"),
    (0.50, "#6b6b00", "20–50%"),
    (0.80, "#2e6b2e", "50–80%"),
    (1.01, "#145214", "≥80%"),
]
HELD = "…"  # a token whose bytes wait for the next one to complete a UTF-8 character
VISIBLE = {"\n": "↵", "\t": "⇥", "\r": "␍"}  # whitespace that would otherwise vanish


def band_colour(prob: float) -> str:
    return next((colour for upper, colour, _ in BANDS if prob < upper), BANDS[-1][1])


def band_style(prob: float) -> Style:
    return Style(bgcolor=band_colour(prob), color="#ffffff")


def legend() -> Text:
    text = Text("p: ", style="dim")
    for _, colour, label in BANDS:
        text.append(f" {label} ", style=Style(bgcolor=colour, color="#ffffff"))
    return text


def visible(text: str) -> str:
    """A token's text with newlines/tabs shown as symbols and other control characters escaped."""
    out = []
    for ch in text:
        if ch in VISIBLE:
            out.append(VISIBLE[ch])
        elif ch < " " or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


EIGHTHS = " ▏▎▍▌▋▊▉"


def bar_of(prob: float, width: int) -> str:
    """A bar ``width`` cells long at 1.0, drawn in eighths of a cell (small odds still show)."""
    eighths = max(0, min(round(prob * width * 8), width * 8))
    full, part = divmod(eighths, 8)
    bar = "█" * full + (EIGHTHS[part] if part else "")
    return bar.ljust(width, "·")


def label(text: str) -> str:
    """A token as a list entry: leading/trailing spaces visible as ␣."""
    shown = visible(text)
    stripped = shown.strip(" ")
    lead = len(shown) - len(shown.lstrip(" "))
    trail = len(shown) - len(shown.rstrip(" "))
    return "␣" * lead + stripped + "␣" * trail if shown else HELD


@dataclass
class Chip:
    """One thing in the stream: a token of the prompt (index -1, dim) or a sampled token."""

    text: str  # as displayed (visible())
    index: int  # token index, -1 for the prompt
    prob: float
    newline: bool  # the token ended a line: the next chip starts a new one
    kind: str = ""  # prompt tokens: "even" / "odd" (alternate shades), "special"


# Prompt tokens: two shades alternate so every token boundary shows; special tokens (the chat
# format's markers) stand out.
PROMPT_STYLES = {
    "even": Style(dim=True, italic=True),
    "odd": Style(dim=True, italic=True, underline=True),
    "special": Style(color="#d7afff", bold=True),
    "": Style(dim=True, italic=True),
}


class TokenView(ScrollView, can_focus=True):
    """The sampled tokens, each on a background shaded by its probability; ←/→ select one."""

    DEFAULT_CSS = """
    TokenView { background: $surface; padding: 0 1; }
    TokenView:focus { background: $surface-lighten-1; }
    """
    BINDINGS = [
        Binding("left", "move(-1)", "Prev token", show=False),
        Binding("right", "move(1)", "Next token", show=False),
        Binding("home", "move_to(0)", "First token", show=False),
        Binding("end", "move_to(-1)", "Last token", show=False),
    ]

    selected: reactive[int | None] = reactive(None)

    class Selected(Message):
        """A token was selected (by key or mouse); index into the sampled tokens, or None."""

        def __init__(self, index: int | None):
            super().__init__()
            self.index = index

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.chips: list[Chip] = []
        self.n_tokens = 0
        self.pending = False  # step mode: a token is being drawn; show a placeholder
        # lines of pieces: (chip number, text piece, cell width)
        self._lines: list[list[tuple[int, str, int]]] = [[]]
        self._line_width = 0
        self._layout_width = 0

    # --------------------------------------------------------------- content

    def clear(self, prompt: str = "", tokens: list[tuple[int, str]] | None = None,
              specials: frozenset[int] = frozenset()) -> None:
        """Empty the stream; lead it with the prompt: as one piece of text, or (``tokens``:
        (id, text) each) as the token sequence the model sees, one chip per token (``prompt``
        then goes first, e.g. "…" for a cut-off beginning)."""
        self.chips.clear()
        self.n_tokens = 0
        self.pending = False
        self.selected = None
        if prompt:
            self.chips.append(Chip(visible(prompt), -1, 1.0, False))
        for n, (i, text) in enumerate(tokens or ()):
            special = i in specials
            kind = "special" if special else ("odd" if n % 2 else "even")
            # a turn's end marker ends its line: the conversation reads turn by turn
            newline = text.endswith("\n") or (special and text.endswith("_end|>"))
            self.chips.append(Chip(visible(text) if text else HELD, -1, 1.0, newline, kind))
        self._relayout()

    @property
    def prompt_text(self) -> str:
        """The prompt as shown (its chips' texts joined)."""
        return "".join(c.text for c in self.chips if c.index < 0)

    def add_tokens(self, items: list[tuple[str, float]]) -> None:
        """Append sampled tokens: (text, probability) each."""
        at_end = self.scroll_offset.y >= self.max_scroll_y
        first, first_line = len(self.chips), len(self._lines) - 1
        for text, prob in items:
            # No text yet: the token's bytes begin a character the next token completes.
            shown = visible(text) if text else HELD
            self.chips.append(Chip(shown, self.n_tokens, prob, text.endswith("\n")))
            self.n_tokens += 1
        for i in range(first, len(self.chips)):
            self._place(i)
        if len(self._lines) - 1 > first_line and at_end:
            self._update_size(scroll=True)  # new lines scroll into view: a full repaint
        else:  # only the lines that changed: cheap enough for every batch
            self.virtual_size = Size(self._layout_width, len(self._lines) + 1)
            self.refresh_lines(first_line, len(self._lines) - first_line + 1)

    def set_pending(self, pending: bool) -> None:
        if pending != self.pending:
            self.pending = pending
            self.refresh_lines(len(self._lines) - 1, 2)

    # --------------------------------------------------------------- layout

    def _relayout(self) -> None:
        self._layout_width = self._width()
        self._lines = [[]]
        self._line_width = 0
        for i in range(len(self.chips)):
            self._place(i)
        self._update_size(scroll=True)

    def _width(self) -> int:
        return max(self.scrollable_content_region.width, 8)

    def _place(self, i: int) -> None:
        """Lay chip i after the last one: a token that does not fit moves whole to the next
        line (unless it is wider than a line: then it is cut), a prompt given as one piece of
        text wraps by character."""
        chip, width = self.chips[i], self._layout_width or self._width()
        text = chip.text
        whole = chip.index >= 0 or chip.kind  # a token (sampled or of the prompt) moves whole
        if whole and 0 < self._line_width and self._line_width + cell_len(text) > width:
            self._new_line()
        piece = ""
        for ch in text:
            w = cell_len(ch)
            if self._line_width + cell_len(piece) + w > width:
                self._push(i, piece)
                self._new_line()
                piece = ""
            piece += ch
        self._push(i, piece)
        if chip.newline:
            self._new_line()

    def _push(self, i: int, piece: str) -> None:
        if piece:
            w = cell_len(piece)
            self._lines[-1].append((i, piece, w))
            self._line_width += w

    def _new_line(self) -> None:
        self._lines.append([])
        self._line_width = 0

    def _update_size(self, scroll: bool) -> None:
        self.virtual_size = Size(self._layout_width, len(self._lines) + 1)  # +1: pending chip
        if scroll:
            self.scroll_end(animate=False, immediate=False, x_axis=False)
        self.refresh()

    def on_resize(self) -> None:
        if self._width() != self._layout_width:
            self._relayout()

    # --------------------------------------------------------------- drawing

    def render_line(self, y: int) -> Strip:
        n = y + self.scroll_offset.y
        base = self.rich_style
        width = self.scrollable_content_region.width
        segments: list[Segment] = []
        if n < len(self._lines):
            for i, piece, _ in self._lines[n]:
                segments.append(Segment(piece, base + self._chip_style(i)))
        if self.pending and n == len(self._lines) - 1:
            segments.append(Segment(" ⚄ ", base + Style(reverse=True, blink=False, bold=True)))
        return Strip(segments).extend_cell_length(width, base).crop(0, width)

    def _chip_style(self, i: int) -> Style:
        chip = self.chips[i]
        if chip.index < 0:
            return PROMPT_STYLES[chip.kind]
        style = band_style(chip.prob)
        if chip.index == self.selected:
            style += Style(reverse=True, bold=True, underline=True)
        return style

    # --------------------------------------------------------------- selection

    def watch_selected(self, old: int | None, new: int | None) -> None:
        self.refresh()
        self.post_message(self.Selected(new))
        if new is not None:
            line = self._line_of(new)
            if line is not None:
                self.scroll_to_region(_row(line), animate=False, immediate=False)

    def _line_of(self, token: int) -> int | None:
        for n, line in enumerate(self._lines):
            if any(self.chips[i].index == token for i, _, _ in line):
                return n
        return None

    def action_move(self, delta: int) -> None:
        if not self.n_tokens:
            return
        current = self.n_tokens if self.selected is None else self.selected
        self.selected = min(max(current + delta, 0), self.n_tokens - 1)

    def action_move_to(self, index: int) -> None:
        if self.n_tokens:
            self.selected = index % self.n_tokens

    def token_at(self, x: int, y: int) -> int | None:
        """The token index under content cell (x, y), or None."""
        n = y + self.scroll_offset.y
        if not 0 <= n < len(self._lines):
            return None
        col = 0
        for i, _, w in self._lines[n]:
            if col <= x < col + w:
                index = self.chips[i].index
                return index if index >= 0 else None
            col += w
        return None

    def on_click(self, event) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = self.token_at(offset.x, offset.y)
        if index is not None:
            self.selected = index


def _row(line: int):
    from textual.geometry import Region

    return Region(0, line, 1, 1)


class DistributionView(Static):
    """The distribution one token was drawn from: top-k bars, the drawn token marked."""

    DEFAULT_CSS = """
    DistributionView { width: 36; height: 1fr; padding: 0 1; border-left: vkey $primary 50%; }
    """
    BAR = 6
    LABEL = 9

    def __init__(self, **kwargs):
        super().__init__("", **kwargs)
        # what is shown, for tests and screen readers: (id, text, prob, chosen)
        self.rows: list[tuple[int, str, float, bool]] = []
        self.raw: dict[int, float] = {}  # id -> the model's own (T=1) probability, as shown
        self.show_hint()

    def show_hint(self, extra: str = "") -> None:
        self.rows = []
        text = Text()
        text.append("Distribution\n", style="bold")
        text.append("Each token was drawn at random from the model's next-token "
                    "probabilities. Select a token (Tab to the stream, ←/→ or click) to "
                    "see what else it could have been.\n\n", style="dim")
        if extra:
            text.append(extra + "\n\n")
        text.append_text(legend())
        self.update(text, layout=False)  # fixed size: no screen relayout per token

    def show(self, event, title: str, drawn: bool = True) -> None:
        """Bars for a TokenEvent's alternatives; ``drawn`` False hides which one was drawn
        (step mode shows the dice before the roll)."""
        top = list(event.top)
        rows = [(i, t, p, drawn and i == event.id) for i, t, p in top]
        if drawn and all(i != event.id for i, _, _ in top):
            rows.append((event.id, event.text, event.prob, True))  # drawn from the tail
        self.rows = rows
        self.raw = dict(getattr(event, "raw", None) or {})
        raw = self.raw
        text = Text()
        text.append(title + "\n", style="bold")
        if drawn:
            text.append("drawn: ", style="dim")
            text.append(label(event.text), style=band_style(event.prob))
            text.append(f"  p={event.prob:.1%}", style="dim")
            if event.id in raw:
                text.append(f" (T=1 {raw[event.id]:.1%})", style="dim")
            text.append("\n")
        else:
            text.append("rolling the dice…\n", style="italic")
        if raw:  # column heads: what was drawn from, and the model's own odds before the knobs
            text.append(f"{'':<{self.LABEL}} {'':{self.BAR}} {'drawn':>6} {'T=1':>6}\n",
                        style="dim")
        for i, t, p, chosen in rows:
            bar = bar_of(p, self.BAR)
            marker = "◀" if chosen else ""
            name = label(t)[: self.LABEL]
            text.append(f"{name:<{self.LABEL}} ", style="bold" if chosen else "")
            text.append(bar, style=Style(color=band_colour(p)))
            text.append(f" {p:6.1%}", style="bold" if chosen else "")
            if i in raw:
                text.append(f" {raw[i]:6.1%}", style="dim")
            text.append(f"{marker}\n", style="bold" if chosen else "")
        rest = 1.0 - sum(p for _, _, p in top)  # mass of every token not listed
        if rest > 0.0005:
            text.append(f"{'(others)':<{self.LABEL}} {'':{self.BAR}} {rest:6.1%}\n", style="dim")
        text.append("\n")
        text.append_text(legend())
        self.update(text, layout=False)  # fixed size: no screen relayout per token
