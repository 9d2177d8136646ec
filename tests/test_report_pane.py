"""The Report pane (Pilot, 80×24 and 160×48): the table equals report.json, a selected cell shows
its examples, claims with their readings, two runs side by side, and a missing report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Select, Static

from tui.panes import report as report_mod
from tui.panes.report import ReportPane, claim_reading, fmt_score, stages_of

SIZES = [(80, 24), (160, 48)]
pytestmark = pytest.mark.anyio


class Host(App):
    def __init__(self, run: str | None = None):
        super().__init__()
        self.run_name = run

    def compose(self) -> ComposeResult:
        yield ReportPane(id="report-pane")


def write_report(run_dir: Path, shift: float = 0.0, with_reading: bool = True) -> dict:
    """A report.json in the shape evaluate_run writes (COMMON.md), figures varied by ``shift``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "run": run_dir.name, "seed": 0, "created": "2026-11-28T18:00:00",
        "metrics": {"format_base": 0.02, "format_sft": 0.98, "arith_pass1_sft": 0.55},
        "families": {
            "arith": {"base": 0.0, "sft": 0.55 + shift, "rl": 0.71 + shift, "labelers": 0.6,
                      "control": 0.58, "n": 200},
            "facts": {"base": 0.125, "sft": 0.72, "rl": 0.7, "n": 100},
        },
        "claims": [
            {"id": "knowledge", "title": "Knowledge comes from pretraining", "value": 0.72 - shift},
            {"id": "rl_gain", "title": "RL beats the labelers", "value": 0.16, "sft": 0.55},
        ],
        "examples": {"arith": {"sft": [
            {"prompt": "Emily buys 3 apples and 2 oranges", "answer": "5", "expected": "5",
             "correct": True},
            {"prompt": "What is 19+25?", "answer": "34", "expected": "44", "correct": False},
        ]}},
        "rl_curve": [{"step": 0, "reward": 0.4, "resp_len": 31.0},
                     {"step": 40, "reward": 0.7, "resp_len": 24.0}],
    }
    if with_reading:
        report["claims"][0]["reading"] = "SFT answers 72% of questions about entities it only read"
    (run_dir / "report.json").write_text(json.dumps(report))
    return report


@pytest.fixture
def report_run(request, root) -> Path:
    """The real micro run's report when conftest provides one, else a report written here."""
    try:
        real = request.getfixturevalue("micro_run")
    except pytest.FixtureLookupError:
        write_report(root / "micro")
        return root / "micro"
    dest = root / Path(real).name
    shutil.copytree(real, dest, ignore=shutil.ignore_patterns("*.safetensors"))
    return dest


def plain(app: App, selector: str) -> str:
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(app.query_one(selector, Static).content)
    return console.export_text()


async def settle(pilot, seconds: float = 0.2) -> None:
    await pilot.pause(seconds)


@pytest.mark.parametrize("size", SIZES)
async def test_table_equals_report_and_cells_show_examples(report_run, size):
    report = json.loads((report_run / "report.json").read_text())
    app = Host(run=report_run.name)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        pane = app.query_one(ReportPane)
        table = app.query_one("#report-table", DataTable)
        families = report["families"]
        stages = stages_of([report])
        assert {"base", "sft", "rl"} <= set(stages)
        assert table.row_count == len(families)
        for fam, row in families.items():
            for stage in stages:
                assert pane.cell_text(fam, f"0:{stage}") == fmt_score(row.get(stage))
        # the first family × stage with examples: select its cell and read them back
        fam, stage = next((f, s) for f, by in report["examples"].items() for s in by if by[s])
        table.focus()
        table.move_cursor(row=list(families).index(fam), column=1 + stages.index(stage))
        await pilot.press("enter")
        await settle(pilot)
        shown = plain(app, "#report-examples")
        first = report["examples"][fam][stage][0]
        assert " ".join(str(first["prompt"]).split())[:40] in " ".join(shown.split())
        assert ("✓" if first["correct"] else "✗") in shown
        claims = plain(app, "#report-claims")
        for claim in report["claims"]:
            assert claim["title"] in claims
            assert fmt_score(claim["value"]) in claims


async def test_claim_reading_uses_report_or_its_numbers():
    assert claim_reading({"title": "t", "value": 0.5, "reading": "half"}) == "half"
    composed = claim_reading({"title": "RL gain", "value": 0.16, "sft": 0.55, "rl": 0.71})
    assert "16.0%" in composed and "sft 55.0%" in composed and "rl 71.0%" in composed


@pytest.mark.parametrize("size", SIZES)
async def test_two_runs_side_by_side(root, size):
    a = write_report(root / "with-idk")
    b = write_report(root / "no-idk", shift=0.1, with_reading=False)
    app = Host(run="with-idk")
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        app.query_one("#report-run-b", Select).value = "no-idk"
        await settle(pilot)
        pane = app.query_one(ReportPane)
        table = app.query_one("#report-table", DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert "SFT A" in labels and "SFT B" in labels
        message = plain(app, "#report-message")
        assert "A with-idk" in message and "B no-idk" in message
        for fam in a["families"]:
            assert pane.cell_text(fam, "0:rl") == fmt_score(a["families"][fam]["rl"])
            assert pane.cell_text(fam, "1:rl") == fmt_score(b["families"][fam]["rl"])
        claims = plain(app, "#report-claims")
        assert f"A {fmt_score(a['claims'][0]['value'])}" in claims
        assert f"B {fmt_score(b['claims'][0]['value'])}" in claims
        pane.show_examples("arith", "sft", 1)
        assert "no-idk" in plain(app, "#report-examples")


async def test_missing_report_says_how_to_make_one(root, monkeypatch):
    (root / "fresh").mkdir()
    (root / "fresh" / "events.jsonl").write_text("")
    monkeypatch.setattr(report_mod, "POLL_S", 0.1)
    app = Host(run="fresh")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        message = plain(app, "#report-message")
        assert "No report for fresh yet" in message and "deepdive eval --run fresh" in message
        assert not app.query_one("#report-table", DataTable).display
        write_report(root / "fresh")  # the eval finishes while the pane is open
        await settle(pilot, 0.5)
        assert app.query_one("#report-table", DataTable).row_count == 2
