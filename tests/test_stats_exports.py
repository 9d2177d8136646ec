"""engine/data/stats.py (one percentage format, the Wilson interval) and tui/exports.py (one export
folder, never the current one)."""

from __future__ import annotations

import pytest

from engine.data.stats import paired_mean_difference, pct, t_quantile, tally_line, wilson
from tui.exports import export_dir, write_export


def test_pct_is_whole_percent_like_the_claims():
    assert pct(0.9986) == "100%" and pct(0.48) == "48%" and pct(0.0) == "0%"
    assert pct(None) == "—"


@pytest.mark.parametrize("k,n,lo,hi", [(0, 20, 0.0, 0.161), (10, 20, 0.299, 0.701),
                                       (20, 20, 0.839, 1.0), (5, 8, 0.306, 0.863)])
def test_wilson_interval(k, n, lo, hi):
    low, high = wilson(k, n)
    assert low == pytest.approx(lo, abs=1e-3) and high == pytest.approx(hi, abs=1e-3)
    assert low <= k / n <= high


def test_tally_line():
    assert tally_line(5, 8) == "5/8 · 62% (95%: 31–86%)"
    assert wilson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("df,p,t", [(1, 0.95, 12.706), (2, 0.95, 4.303), (3, 0.95, 3.182),
                                    (10, 0.95, 2.228), (30, 0.95, 2.042), (31, 0.95, 2.040),
                                    (10, 0.99, 3.169)])
def test_t_quantile_matches_the_printed_table(df, p, t):
    assert t_quantile(p, df) == pytest.approx(t, abs=1e-3)


def test_paired_mean_difference_by_hand():
    """Differences 1, 2, 3: mean 2, sd 1, so 2 ± t(2) · 1 / √3 = 2 ± 2.484."""
    d, lo, hi = paired_mean_difference([3.0, 2.0, 3.0], [2.0, 0.0, 0.0])
    assert (d, lo, hi) == pytest.approx((2.0, -0.484, 4.484), abs=1e-3)
    with pytest.raises(ValueError):
        paired_mean_difference([1.0], [0.0])


def test_exports_go_to_the_env_folder_or_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DEEPDIVE_EXPORT_DIR", raising=False)
    assert export_dir() == tmp_path / "home" / "deepdive-exports"
    monkeypatch.setenv("DEEPDIVE_EXPORT_DIR", str(tmp_path / "out"))
    path = write_export("../../escape.md", "# hi\n")
    assert path == tmp_path / "out" / "escape.md" and path.read_text() == "# hi\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out"]
