"""Small pure helpers for showing rates honestly: one percentage format, a Wilson interval.

The Compare pane's family tallies and the Report pane use these so a figure reads the same
everywhere it appears (and the same as the claims' readings, which engine/data/evals.py writes in
whole percent).
"""

from __future__ import annotations

import math
from collections.abc import Callable


def pct(x: float | None) -> str:
    """A share in 0..1 as a whole percentage ("72%"); missing as "—"."""
    if x is None:
        return "—"
    return f"{100 * x:.0f}%"


def signed(x) -> str:
    """A score either side of zero (gold, a difference of gold) to two places with its sign
    ("+0.13"); missing as "—"."""
    return f"{x:+.2f}" if isinstance(x, int | float) else "—"


# A claim's or a transfer row's unit where its figure is not a pass rate: a gold score (the
# hidden raters'), or a difference of two pass rates.
GOLD, POINTS = "gold", "points"


def claim_figure(claim: dict, rate: Callable[[object], str]) -> str:
    """A claim's headline figure: a gold score signed, a difference of two pass rates in signed
    points ("-32 pts"), anything else (a rate) by ``rate``, the front end's own percentage
    format."""
    value, unit = claim.get("value"), claim.get("unit")
    if unit == POINTS and isinstance(value, int | float):
        return f"{100 * value:+.0f} pts"
    return signed(value) if unit == GOLD else rate(value)


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


def t_quantile(p: float, df: int) -> float:
    """The two-sided Student t critical value: t with P(|T| < t) = ``p`` for ``df`` (a whole
    number) degrees of freedom; 12.706 for p = 0.95 and df = 1, 2.042 for df = 30. Found by
    bisection on the exact distribution, so no table or library is needed."""
    if df < 1 or not 0 < p < 1:
        raise ValueError("t_quantile needs df >= 1 and 0 < p < 1")
    lo, hi = 0.0, 1.0
    while _t_within(hi, df) < p:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_within(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def _t_within(t: float, df: int) -> float:
    """P(|T| < t) for Student's t on a whole number of degrees of freedom, exactly: a finite
    series in cos² of θ = atan(t / √df) (Abramowitz & Stegun 26.7.3 and 26.7.4)."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    term, total = 1.0, 1.0
    if df % 2:  # odd: (2/π)(θ + sinθ cosθ (1 + 2/3 c² + 2·4/(3·5) c⁴ + … up to c^(df-3)))
        if df == 1:
            return 2 * theta / math.pi
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    for k in range(1, df // 2):  # even: sinθ (1 + 1/2 c² + 1·3/(2·4) c⁴ + … up to c^(df-2))
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return math.sin(theta) * total


def paired_mean_difference(a: list[float], b: list[float],
                           level: float = 0.95) -> tuple[float, float, float]:
    """The mean of a − b over the same items (RL's and the control's gold on one task each),
    with the paired t interval, as (difference, low, high): mean ± t(n−1) · sd / √n of the
    per-item differences. For scores, not pass/fail: the t interval is exact for normal
    differences and close to it at 30 items; where every difference is the same it has no
    width, as the data then show no spread at all."""
    n = len(a)
    if n < 2 or n != len(b):
        raise ValueError("paired_mean_difference needs two equally long lists of 2+ items")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = t_quantile(level, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half
