"""The Report pane (Pilot, 80×24 and 160×48): the table equals report.json, a selected cell shows
its examples, claims with their readings, two runs side by side, and a missing report."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Select, Static

from tui.panes import report as report_mod
from tui.panes.report import (
    HOLDS_STYLE,
    ReportPane,
    claim_figure,
    claim_reading,
    fmt_score,
    pass_rows,
    stages_of,
)

SIZES = [(80, 24), (160, 48)]
pytestmark = pytest.mark.anyio


class Host(App):
    def __init__(self, run: str | None = None):
        super().__init__()
        self.run_name = run

    def compose(self) -> ComposeResult:
        yield ReportPane(id="report-pane")


def write_report(run_dir: Path, shift: float = 0.0, with_reading: bool = True) -> dict:
    """A report.json in the shape evaluate_run writes, figures varied by ``shift``."""
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
        assert table.row_count == len(families) + len(pass_rows(report))
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
            assert claim_figure(claim) in claims


async def test_claim_reading_uses_report_or_its_numbers():
    assert claim_reading({"title": "t", "value": 0.5, "reading": "half"}) == "half"
    composed = claim_reading({"title": "RL gain", "value": 0.16, "sft": 0.55, "rl": 0.71})
    assert "16%" in composed and "sft 55%" in composed and "rl 71%" in composed


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


# --- issue 15: one percentage format, titles by holds, how it was scored, old reports, export ---

def new_format_report(run_dir: Path) -> dict:
    """A report in today's format, made by engine.data.evals.build_report from rows of known shares
    (one stage's format share is 0.9986: 99.9% one way, 100% the other)."""
    from engine.data.evals import CHAT_FAMILIES, build_report

    def rows(share: float, n: int = 100, fmt: float = 1.0) -> list[dict]:
        right, formatted = round(share * n), round(fmt * n)
        return [{"prompt": f"q{i}", "answer": "a", "expected": "a", "correct": i < right,
                 "reason": "", "format": i < formatted} for i in range(n)]

    results = {}
    for stage, share in (("base", 0.0), ("sft", 0.5), ("rl", 0.7)):
        by_fam = {fam: rows(share) for fam in CHAT_FAMILIES}
        by_fam["answer_first"] = rows(share / 2)
        if stage == "base":
            by_fam = {fam: rows(0.0, fmt=0.0) for fam in CHAT_FAMILIES}
            by_fam["complete_heldout"] = rows(0.8)
        results[stage] = by_fam
    # 7 of 5000 SFT chat rows unformatted: format_sft = 0.9986
    sft_rows = [r for fam in CHAT_FAMILIES for r in results["sft"][fam]]
    for r in sft_rows:
        r["format"] = True
    for r in sft_rows[:1]:
        r["format"] = False
    sampled = {"sft": {"pass1": 0.41, "passk": 0.8, "n": 48},
               "rl": {"pass1": 0.62, "passk": 0.83, "n": 48}}
    report = build_report(run_dir.name, 0, results, 0.6, [], sampled=sampled, split="test",
                          probe={"facts": 480, "unknown": 37}, tuned_on="dev")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.json").write_text(json.dumps(report))
    return report


def all_text(app: App) -> str:
    return "\n".join(plain(app, sel) for sel in ("#report-message", "#report-caption",
                                                  "#report-claims"))


async def test_every_percentage_has_one_format(root):
    report = new_format_report(root / "new")
    fmt = next(c for c in report["claims"] if c["id"] == "format")
    assert 0.995 < fmt["value"] < 1.0 and "100%" in fmt["reading"]
    app = Host(run="new")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        pane = app.query_one(ReportPane)
        shown = all_text(app)
        assert "99.9%" not in shown and re.search(r"\d\.\d%", shown) is None
        assert "A 100%" not in shown and "100%" in shown  # the figure and its reading agree
        assert pane.cell_text("arith", "0:sft") == "50%"
        assert pane.cell_text("pass@1", "0:rl") == "62%"


async def test_claim_titles_come_from_the_report_coloured_by_holds(root):
    report = new_format_report(root / "new")
    report["claims"][0].update(title="Held-out knowledge does not reach the chat model",
                               holds=False)
    report["claims"][1].update(title="SFT teaches the chat format", holds=True)
    report["claims"][2].update(title="Something (not measured)", holds=None)
    (root / "new" / "report.json").write_text(json.dumps(report))
    app = Host(run="new")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        pane = app.query_one(ReportPane)
        titles = pane.claim_titles
        assert [t.plain for t in titles] == [c["title"] for c in report["claims"]]
        assert [str(t.style) for t in titles[:3]] == [HOLDS_STYLE[False], HOLDS_STYLE[True],
                                                      HOLDS_STYLE[None]]
        claims = " ".join(plain(app, "#report-claims").split())
        assert "Held-out knowledge does not reach the chat model" in claims
        assert "Knowledge comes from pretraining" not in claims  # never a fixed title


async def test_caption_says_how_it_was_scored(root):
    report = new_format_report(root / "new")
    app = Host(run="new")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        pane = app.query_one(ReportPane)
        caption = " ".join(plain(app, "#report-caption").split())
        assert "scored answering chats" in caption and "base model too" in caption
        assert "n = distinct prompts" in caption
        assert "Split: test" in caption and "Presets tuned on: dev" in caption
        assert "37 of 480 training facts marked unknown" in caption
        header = plain(app, "#report-message")
        assert "test split" in header and "tuned on dev" in header
        table = app.query_one("#report-table", DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert "n distinct" in labels
        for key, metric in (("pass@1", "arith_pass1"), ("pass@k", "arith_passk")):
            for stage in ("sft", "rl"):
                assert pane.cell_text(key, f"0:{stage}") == fmt_score(
                    report["metrics"][f"{metric}_{stage}"])
        assert "pass@8" in str(table.get_row("pass@k")[0])


async def test_an_old_format_report_is_shown_and_said_to_be_old(root):
    # the committed card as a report from before the split: no split, no tuned_on, no holds
    report = json.loads((Path(__file__).resolve().parent.parent / "checkpoints" / "tiny"
                         / "report.json").read_text())
    for key in ("split", "tuned_on"):
        report.pop(key, None)
    report["claims"] = [{k: v for k, v in c.items() if k != "holds"} for c in report["claims"]]
    (root / "tiny").mkdir()
    (root / "tiny" / "report.json").write_text(json.dumps(report))
    app = Host(run="tiny")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        pane = app.query_one(ReportPane)
        assert "old report" in plain(app, "#report-message")
        assert "Split not recorded" in " ".join(plain(app, "#report-caption").split())
        for fam in report["families"]:
            assert pane.cell_text(fam, "0:sft") == fmt_score(report["families"][fam]["sft"])
        if not any("holds" in c for c in report["claims"]):
            assert all(str(t.style) == HOLDS_STYLE[None] for t in pane.claim_titles)
            assert "not checked against its numbers" in plain(app, "#report-claims")


async def test_export_writes_markdown_and_json(root, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPDIVE_EXPORT_DIR", str(tmp_path / "exports"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    report = new_format_report(root / "new")
    app = Host(run="new")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.query_one(ReportPane).focus()
        await pilot.press("ctrl+y")
        md = app.query_one(ReportPane).last_export
        assert md is not None and md.parent == tmp_path / "exports"
        assert json.loads(md.with_suffix(".json").read_text())["new"] == report
        text = md.read_text()
        assert "| arith | 0% | 50% | 70% |" in text and "99.9%" not in text
        assert "Split: test" in text
        assert list(cwd.iterdir()) == []  # nothing written into the current folder


async def test_the_transfer_table_shows_every_family_from_the_report(report_run):
    report = json.loads((report_run / "report.json").read_text())
    rows = report_mod.transfer_rows(report)
    if not rows:
        pytest.skip("this report has no RL and control models to compare")
    app = Host(run=report_run.name)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, 0.4)
        claims = plain(app, "#report-claims")
        assert "RL − control, 95%" in claims
        for r in rows:  # each family's interval, exactly as the report has it (the first
            # line of it: the open tasks' row puts its interval on a second line)
            cells = [c.split("\n")[0] for c in report_mod.transfer_cells(r, sep="\n")]
            line = next(ln for ln in claims.splitlines()
                        if ln.lstrip().startswith(f"{r['family']} ") and cells[4] in ln)
            assert cells[1] in line and cells[2] in line
    table = report_mod.transfer_table(report)
    styles = [str(c.style) for c in table.columns[4]._cells]
    assert styles == ["dim" if r.get("few") else "green" if r["lo"] > 0 else "red"
                      if r["hi"] < 0 else "" for r in rows]
    few = [{**r, "few": False, "lo": 0.01, "n": 40} for r in rows[:1]] + \
          [{**r, "few": True, "lo": 0.01, "n": 12} for r in rows[:1]]
    table = report_mod.transfer_table({"transfer": few})
    assert [str(c.style) for c in table.columns[4]._cells] == ["green", "dim"]


def open_tasks_report(run_dir: Path) -> dict:
    """A report from build_report with RL and a control: pass rates on the chat families, and
    the open tasks' gold on 32 tasks (RL 0.3 on half and 0.1 on the rest, the control 0.1 on
    all: RL +0.10 gold)."""
    from engine.data.evals import CHAT_FAMILIES, build_report

    def rows(right: int) -> list[dict]:
        return [{"prompt": f"q{i}", "answer": "a", "expected": "a", "correct": i < right,
                 "reason": "", "format": True} for i in range(100)]

    def gold(values: list[float]) -> list[dict]:
        return [{"prompt": f"Tell a visitor about place {i}.", "answer": "b", "gold": g}
                for i, g in enumerate(values)]

    results = {stage: {**{f: rows(right) for f in CHAT_FAMILIES}, "answer_first": rows(10)}
               for stage, right in (("sft", 40), ("rl", 60), ("control", 45))}
    results["rl"]["open_tasks"] = gold([0.3] * 16 + [0.1] * 16)
    results["control"]["open_tasks"] = gold([0.1] * 32)
    report = build_report(run_dir.name, 0, results, 0.6, [], split="test",
                          rl_families=("arith", "decimal_cmp"))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.json").write_text(json.dumps(report))
    return report


def shown_at_width(app: App, selector: str) -> str:
    """What a Static shows, laid out at its own width on the screen (not a wide console)."""
    widget = app.query_one(selector, Static)
    console = Console(width=widget.size.width, record=True,
                      file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(widget.content)
    return console.export_text()


async def test_the_open_tasks_row_is_in_gold_at_80_columns(root, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPDIVE_EXPORT_DIR", str(tmp_path / "exports"))
    report = open_tasks_report(root / "gold")
    row = next(r for r in report["transfer"] if r["family"] == "open_tasks")
    assert (row["rl"], row["control"], row["diff"], row["n"]) == (0.2, 0.1, 0.1, 32)
    app = Host(run="gold")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        lines = shown_at_width(app, "#report-claims").splitlines()
        i = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("open_tasks "))
        first, second = lines[i], lines[i + 1]
        interval = f"[{row['lo']:+.2f}, {row['hi']:+.2f}]"
        assert all(x in first for x in ("left out,", "+0.20", "+0.10", "+0.10 gold", "32"))
        assert "unverifiable" in second and interval in second
        assert "%" not in first + second  # gold, never a percentage
        for r in report["transfer"][:-1]:  # every other family still on one line
            cells = report_mod.transfer_cells(r)
            assert any(f" {r['family']} " in ln and cells[4] in ln for ln in lines), r
        note = " ".join(" ".join(lines).split())
        assert "open_tasks: unverifiable, never practised by RL" in note
        app.query_one(ReportPane).focus()
        await pilot.press("ctrl+y")
        md = app.query_one(ReportPane).last_export
    text = md.read_text()
    assert (f"| open_tasks | left out, unverifiable | +0.20 | +0.10 | +0.10 gold {interval} "
            "| 32 |") in text
    assert "the other rows: pass rates, differences in points" in text


async def test_the_rl_line_reads_the_ends_of_the_curve_not_one_noisy_step():
    """One step's reward is a few samples: a run whose reward rose must not read as a fall
    because its last step happened to be a poor one."""
    rewards = [0.125, 0.05, 0.05, 0.05, 0.05] + [0.1] * 30 + [0.2, 0.2, 0.2, 0.2, 0.047]
    curve = [{"step": i + 1, "reward": r, "resp_len": 60} for i, r in enumerate(rewards)]
    line = report_mod.rl_curve_line({"rl_curve": curve})
    assert "mean of 5 logged steps" in line and "reward 0.065 → 0.169" in line
    assert report_mod.rl_curve_line({"rl_curve": curve[:1]}) is None
