"""Token chips: what the Tokens pane draws for a list of token ids.

A chip is the smallest run of tokens whose bytes make whole characters. Most chips are one token;
a Korean syllable or an emoji that BPE split into byte pieces becomes one chip holding all of its
ids (as the tiktokenizer web app groups graphemes), so no chip ever shows half a character as
mojibake. Pure functions, no Textual: the layout is tested and benchmarked on its own.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from rich.cells import cell_len, chop_cells

# Whitespace made visible. A newline keeps its arrow *and* breaks the line, as in tiktokenizer.
VISIBLE = {" ": "⋅", "\t": "→", "\n": "↵\n", "\r": "␍"}
MAX_GROUP = 8  # a character is at most 4 bytes; a run of 8 tokens that never completes one is junk


@dataclass(frozen=True, slots=True)
class Chip:
    ids: tuple[int, ...]
    pieces: tuple[bytes, ...]  # the bytes of each id, in order
    text: str  # the characters those bytes make; "\xNN" escapes for bytes that make none
    special: bool = False

    @property
    def data(self) -> bytes:
        return b"".join(self.pieces)

    @property
    def partial(self) -> bool:
        """True when single tokens of this chip are not whole UTF-8 (shown grouped, as bytes)."""
        return any(not _is_utf8(p) for p in self.pieces)


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def group_chips(
    ids: Iterable[int], token_bytes: Callable[[int], bytes], special_ids: set[int] | frozenset = ()
) -> list[Chip]:
    """Group token ids into chips of whole characters (see the module docstring)."""
    chips: list[Chip] = []
    buf_ids: list[int] = []
    buf: list[bytes] = []

    def flush() -> None:  # bytes that never became a character: keep them, as escapes
        if buf_ids:
            text = b"".join(buf).decode("utf-8", errors="backslashreplace")
            chips.append(Chip(tuple(buf_ids), tuple(buf), text))
            buf_ids.clear()
            buf.clear()

    for i in ids:
        b = token_bytes(i)
        if i in special_ids:
            flush()
            chips.append(Chip((i,), (b,), b.decode("utf-8", errors="replace"), special=True))
            continue
        buf_ids.append(i)
        buf.append(b)
        data = b"".join(buf) if len(buf) > 1 else b
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            waiting = e.reason == "unexpected end of data" and len(buf) < MAX_GROUP
            if not waiting:
                flush()
            continue
        chips.append(Chip(tuple(buf_ids), tuple(buf), text))
        buf_ids.clear()
        buf.clear()
    flush()
    return chips


@lru_cache(maxsize=1 << 16)  # token texts repeat: a long text has far fewer distinct ones
def visible(text: str) -> str:
    """Text as a chip shows it: whitespace as ⋅ → ↵, invisible characters as escapes."""
    out = []
    for ch in text:
        if ch in VISIBLE:
            out.append(VISIBLE[ch])
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Cs"):
            # controls, zero-width joiners, odd spaces: a terminal would hide them or misalign
            out.append(f"\\u{ord(ch):04x}")
        elif cat.startswith("M") and not out:
            out.append("◌" + ch)  # a combining mark alone needs a base to be seen
        else:
            out.append(ch)
    return "".join(out)


# A laid-out line is a list of runs: (text, chip index, is_id). An id run is the "496" label.
Run = tuple[str, int, bool]


@dataclass
class Layout:
    lines: list[list[Run]]
    chip_line: list[int]  # the line where each chip starts
    width: int  # the widest line, in cells

    def spans(self, y: int) -> list[tuple[int, int, int]]:
        """(x0, x1, chip) of every run on line y."""
        out, x = [], 0
        for text, chip, _ in self.lines[y]:
            w = cell_len(text)
            out.append((x, x + w, chip))
            x += w
        return out

    def chip_at(self, x: int, y: int) -> int | None:
        if not 0 <= y < len(self.lines):
            return None
        for x0, x1, chip in self.spans(y):
            if x0 <= x < x1:
                return chip
        return None

    def chip_x(self, index: int) -> int:
        """The column where a chip starts."""
        for x0, _, chip in self.spans(self.chip_line[index]):
            if chip == index:
                return x0
        return 0


_cells = lru_cache(maxsize=1 << 16)(cell_len)


def chip_label(chip: Chip, show_ids: bool) -> list[tuple[str, bool]]:
    label = visible(chip.text)
    if not show_ids:
        return [(label, False)]
    ids = " " + "+".join(str(i) for i in chip.ids)
    if label.endswith("\n"):  # the id stays on the line of its ↵
        return [(label[:-1], False), (ids, True), ("\n", False)]
    return [(label, False), (ids, True)]


def layout_chips(chips: list[Chip], width: int, show_ids: bool = False) -> Layout:
    """Wrap chips into lines of at most `width` cells. A chip moves to the next line whole when
    it fits there; only a chip wider than the view is cut. Each ↵ ends its line."""
    width = max(width, 4)
    lines: list[list[Run]] = [[]]
    chip_line: list[int] = []
    x = 0
    widest = 0
    for index, chip in enumerate(chips):
        parts = chip_label(chip, show_ids)
        if not any("\n" in t for t, _ in parts):
            # the common case, kept cheap: long texts have tens of thousands of chips
            # (docs/measurements.md)
            total = sum(_cells(t) for t, _ in parts)
            if x and x + total > width and total <= width:
                lines.append([])
                x = 0
            if x + total <= width:
                chip_line.append(len(lines) - 1)
                lines[-1].extend((t, index, is_id) for t, is_id in parts)
                x += total
                widest = max(widest, x)
                continue
        total = sum(_cells(t.replace("\n", "")) for t, _ in parts)
        if x and x + total > width and total <= width:
            lines.append([])
            x = 0
        chip_line.append(len(lines) - 1)
        for text, is_id in parts:
            for j, segment in enumerate(text.split("\n")):
                if j:  # the ↵ before this point ends the line
                    widest = max(widest, x)
                    lines.append([])
                    x = 0
                while segment:
                    room = width - x
                    if cell_len(segment) <= room:
                        piece, segment = segment, ""
                    elif x:  # finish this line, continue on the next
                        lines.append([])
                        x = 0
                        continue
                    else:
                        piece = chop_cells(segment, room)[0]
                        segment = segment[len(piece) :]
                    lines[-1].append((piece, index, is_id))
                    x += cell_len(piece)
                    if segment:
                        widest = max(widest, x)
                        lines.append([])
                        x = 0
        widest = max(widest, x)
    return Layout(lines, chip_line, widest)
