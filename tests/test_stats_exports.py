"""engine/data/stats.py (one percentage format, the Wilson interval) and tui/exports.py (one export
folder, never the current one)."""

from __future__ import annotations

import pytest

from engine.data.stats import pct, tally_line, wilson
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


def test_exports_go_to_the_env_folder_or_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DEEPDIVE_EXPORT_DIR", raising=False)
    assert export_dir() == tmp_path / "home" / "deepdive-exports"
    monkeypatch.setenv("DEEPDIVE_EXPORT_DIR", str(tmp_path / "out"))
    path = write_export("../../escape.md", "# hi\n")
    assert path == tmp_path / "out" / "escape.md" and path.read_text() == "# hi\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out"]
