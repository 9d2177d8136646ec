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
    """Mean of a_i - b_i over the same items (RL vs control on one prompt each) with its normal
    95% interval, as (difference, low, high). Pairing removes the items' own difficulty from
    the noise, so the interval is narrower than two independent rates' would be."""
    n = len(a)
    if n == 0 or n != len(b):
        raise ValueError("paired_difference needs two equally long, non-empty lists")
    d = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1) if n > 1 else 0.0
    half = z * math.sqrt(var / n)
    return mean, max(-1.0, mean - half), min(1.0, mean + half)  # a difference of shares
