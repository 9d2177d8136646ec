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
