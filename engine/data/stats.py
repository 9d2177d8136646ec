"""Small pure helpers for showing rates honestly: one percentage format, a Wilson interval.

The Compare pane's family tallies and the Report pane use these so a figure reads the same
everywhere it appears (and the same as the claims' readings, which engine/data/evals.py writes in
whole percent).
"""

from __future__ import annotations

import math


def pct(x: float | None) -> str:
    """A share in 0..1 as a whole percentage ("72%"); missing as "—"."""
    if x is None:
        return "—"
    return f"{100 * x:.0f}%"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of k successes in n tries, as (low, high)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def tally_line(k: int, n: int) -> str:
    """"5/8 · 62% (95%: 31–86%)": a rate with its Wilson interval, in whole percent."""
    if n <= 0:
        return "0/0"
    lo, hi = wilson(k, n)
    return f"{k}/{n} · {pct(k / n)} (95%: {100 * lo:.0f}–{100 * hi:.0f}%)"


def paired_difference(a: list[bool], b: list[bool], z: float = 1.96) -> tuple[float, float, float]:
    """The difference of two success rates measured on the same items (RL vs control on one
    prompt each), with Newcombe's hybrid score interval for paired proportions (1998, his
    method 10), as (difference, low, high). It builds on each rate's Wilson interval and the
    pairs' correlation, so it stays inside [-1, 1] and keeps its coverage where a normal
    interval fails: few prompts, rates near 0 or 1, or no discordant pairs at all."""
    n = len(a)
    if n == 0 or n != len(b):
        raise ValueError("paired_difference needs two equally long, non-empty lists")
    both = sum(1 for x, y in zip(a, b, strict=True) if x and y)
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    neither = n - both - only_a - only_b
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    (l1, u1), (l2, u2) = wilson(both + only_a, n, z), wilson(both + only_b, n, z)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(margins) if margins else 0.0
    down = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    up = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    d = p1 - p2
    return d, max(-1.0, d - down), min(1.0, d + up)
