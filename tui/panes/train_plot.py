"""A small line plot drawn with braille dots (2×4 dots per cell), several curves on one axis.

Cheap enough to redraw a few times a second: it draws at most one dot column per x position
and the Train pane hands it at most ~1k points per curve (``engine.progress.state.Series``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widget import Widget

from engine.api import fmt_num

# Bit of each dot in a braille cell, indexed [row][column] (Unicode braille patterns).
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))


@dataclass
class Curve:
    label: str
    xs: list[float]
    ys: list[float]
    color: str


class BraillePlot(Widget):
    """A titled plot: a legend line (title, what the y axis is, each curve's latest value),
    the braille canvas with y values on the left (top, middle, bottom), and an x axis with
    its first and last value and what it counts (steps)."""

    DEFAULT_CSS = """
    BraillePlot { height: 1fr; min-height: 4; }
    """

    def __init__(self, title: str = "", **kwargs):
        super().__init__(**kwargs)
        self.title = title
        self.y_label = ""
        self.x_label = "step"
        self.curves: list[Curve] = []

    def set_curves(self, title: str, curves: list[Curve], y_label: str = "",
                   x_label: str = "step") -> None:
        self.title, self.y_label, self.x_label = title, y_label, x_label
        self.curves = curves
        self.refresh()

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        legend = Text(self.title + " ", style="bold", no_wrap=True, overflow="ellipsis")
        if self.y_label:
            legend.append(f"{self.y_label} ", style="bold").append("by ", style="dim")
            legend.append(f"{self.x_label}  ", style="bold")
        for c in self.curves:
            last = fmt_num(c.ys[-1]) if c.ys else "—"
            legend.append("━ ", style=c.color).append(f"{c.label} {last}  ")
        legend.truncate(width, overflow="ellipsis")
        points = [c for c in self.curves if c.xs]
        if height < 2 or width < 12 or not points:
            if height >= 2:
                legend.append("\n(no points yet)", style="dim")
            return legend
        axis = height >= 4  # room for the x axis under at least two rows of canvas
        return legend + Text("\n") + self._canvas(points, width, height - 1 - axis, axis)

    def _canvas(self, curves: list[Curve], width: int, rows: int, axis: bool = True) -> Text:
        x0 = min(c.xs[0] for c in curves)
        x1 = max(c.xs[-1] for c in curves)
        y0 = min(min(c.ys) for c in curves)
        y1 = max(max(c.ys) for c in curves)
        if y1 - y0 < 1e-12:
            y0, y1 = y0 - 0.5, y1 + 0.5
        mid = rows // 2 if rows >= 5 else None  # a middle y value where there is room
        labels = [fmt_num(y1), fmt_num(y0)]
        if mid is not None:  # the value at that row's centre
            labels.append(fmt_num(y1 - (y1 - y0) * (mid * 4 + 1.5) / (rows * 4 - 1)))
        lw = max(len(s) for s in labels) + 1
        cols = max(1, width - lw)
        dots_w, dots_h = cols * 2, rows * 4
        mask = [[0] * cols for _ in range(rows)]
        color: list[list[str | None]] = [[None] * cols for _ in range(rows)]
        sx = (dots_w - 1) / (x1 - x0) if x1 > x0 else 0.0
        sy = (dots_h - 1) / (y1 - y0)
        for c in curves:
            prev: tuple[int, int] | None = None
            for x, y in zip(c.xs, c.ys, strict=False):
                px = int((x - x0) * sx) if sx else dots_w // 2
                py = dots_h - 1 - int((y - y0) * sy)
                for qx, qy in _segment(prev, (px, py)):
                    r, cc = qy >> 2, qx >> 1
                    mask[r][cc] |= _DOTS[qy & 3][qx & 1]
                    color[r][cc] = c.color
                prev = (px, py)
        out = Text(no_wrap=True)
        for r in range(rows):
            label = (labels[0] if r == 0 else labels[1] if r == rows - 1
                     else labels[2] if r == mid else "")
            out.append(label.rjust(lw - 1) + "┤" if label else " " * (lw - 1) + "│", style="dim")
            # one span per run of same-coloured cells, not one per cell: far fewer spans
            row_mask, row_color = mask[r], color[r]
            start = 0
            for cc in range(1, cols + 1):
                if cc < cols and row_color[cc] == row_color[start]:
                    continue
                chunk = "".join(chr(0x2800 + m) if m else " " for m in row_mask[start:cc])
                out.append(chunk, style=row_color[start] or "")
                start = cc
            if r < rows - 1:
                out.append("\n")
        if axis:
            out.append("\n").append(x_axis(fmt_num(x0), fmt_num(x1), self.x_label, lw, cols),
                                    style="dim")
        return out


def x_axis(first: str, last: str, label: str, lw: int, cols: int) -> str:
    """``   └0 ───── step ───── 500``: the x range and what it counts, under the canvas."""
    inner = cols - len(first) - len(last)
    name = f" {label} " if inner >= len(label) + 4 else " "
    left = max(0, (inner - len(name)) // 2)
    right = max(0, inner - len(name) - left)
    return " " * (lw - 1) + "└" + first + "─" * left + name + "─" * right + last


def _segment(a: tuple[int, int] | None, b: tuple[int, int]) -> list[tuple[int, int]]:
    """Dots joining a to b (a vertical run when they share a column), so curves stay connected."""
    if a is None:
        return [b]
    (ax, ay), (bx, by) = a, b
    n = max(abs(bx - ax), abs(by - ay))
    if n <= 1:
        return [b]
    return [(ax + (bx - ax) * i // n, ay + (by - ay) * i // n) for i in range(1, n + 1)]
