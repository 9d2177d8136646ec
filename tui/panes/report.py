"""The Report pane: a run's report card (``report.json``), alone or beside a second run.

A table of task families × stages (pass@1 from ``families``; n counts distinct prompts), the
sampled pass@1 / pass@k rows where the report has them, a caption saying how it was scored
(chat format for every stage, the split, what presets were tuned on, the knowledge probe), the
examples behind the selected cell, and the lecture's claims: each headline is the report's own
title, green where the numbers say it holds, red where they say it does not, dim where nothing
was measured. Every figure shown is read from report.json, and every percentage goes through
one formatter (``fmt_score``, whole percent, as the claims' readings are written) so a figure
never reads 99.9% in one place and 100% in another. Reports written before claims carried
``holds`` (and before ``fact`` became ``fact_known``) are shown as they are, and said to be old.
``e`` exports what the pane shows as Markdown and JSON into the export folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Select, Static

from engine.api import (
    GOLD,
    REPORT_COLUMNS,
    REPORT_FILE,
    REPORT_STAGES,
    checkpoints_root,
    fmt_num,
    list_runs,
    num,
    pct,
    read_json,
    signed,
)
from engine.api import claim_figure as figure_of_claim
from tui.runpick import RootWatch
from tui.widgets.picker import refill

STAGE_TITLES = {"base": "base", "sft": "SFT", "rl": "RL", "labelers": "labelers",
                "control": "SFT+ control"}
MAX_EXAMPLES = 4
HOLDS_STYLE = {True: "bold green", False: "bold red", None: "bold dim"}
PASS_ROWS = (("pass@1", "arith_pass1"), ("pass@k", "arith_passk"))  # (row key, metric prefix)
POLL_S = 2.0  # how often report.json files are stat'ed (a finished eval shows up by itself)


def load_report(run_dir: Path) -> tuple[dict | None, str | None]:
    """(report, None) or (None, a message saying what is wrong and how to make one)."""
    path = run_dir / REPORT_FILE
    if not path.is_file():
        return None, (f"No report for {run_dir.name} yet. Make it with: "
                      f"deepdive eval --run {run_dir.name}")
    try:
        report = read_json(path)
    except (OSError, ValueError) as exc:
        return None, (f"{path} could not be read ({exc}); make it again: "
                      f"deepdive eval --run {run_dir.name}")
    if not isinstance(report, dict):
        return None, f"{path} is not a report card (expected a JSON object)"
    return report, None


def run_names(root: Path) -> list[str]:
    """Runs under ``root``: those ``list_runs`` knows plus any folder holding a report.json."""
    names = {r.name for r in list_runs(root)}
    if root.is_dir():
        names |= {d.name for d in root.iterdir() if (d / REPORT_FILE).is_file()}
    return sorted(names)


def fmt_score(value: Any) -> str:
    """A pass rate in 0..1 as a whole percentage (the one format of every percentage in the
    pane, and the claims' readings'); other numbers as they are; missing as "—"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return pct(value)
    return fmt_num(value)


def is_old_format(report: dict) -> bool:
    """A report written before claims carried ``holds`` (their titles were fixed text)."""
    claims = [c for c in report.get("claims") or [] if isinstance(c, dict)]
    return bool(claims) and not any("holds" in c for c in claims)


def claim_title(claim: dict, old: bool = False) -> Text:
    """The claim's headline as the report titles it, coloured by ``holds``."""
    holds = claim.get("holds")
    title = Text(str(claim.get("title") or claim.get("id") or "claim"),
                 style=HOLDS_STYLE.get(holds if isinstance(holds, bool) else None))
    if old:
        title.append("  (old report: this title was not checked against its numbers)",
                     style="dim italic")
    return title


def pass_rows(report: dict) -> list[tuple[str, str, dict[str, Any]]]:
    """(row key, label, {stage: value}) of the sampled pass@1 / pass@k rows the report has."""
    m = report.get("metrics") if isinstance(report.get("metrics"), dict) else {}
    k = m.get("passk_k", "k")
    samples = m.get("passk_samples")
    how = f"{samples} samples, T=1" if samples else "sampled"
    out = []
    for key, prefix in PASS_ROWS:
        values = {stage: m.get(f"{prefix}_{REPORT_STAGES.get(stage, stage)}")
                  for stage in REPORT_COLUMNS}
        if key == "pass@k" and not any(isinstance(v, (int, float)) for v in values.values()):
            continue
        if key == "pass@1" and not any(f"arith_passk_{s}" in m for s in ("sft", "rl")):
            continue  # an old report's arith_pass1 was greedy: the arith row already shows it
        label = f"arith pass@{1 if key == 'pass@1' else k} ({how})"
        out.append((key, label, values))
    return out


def scoring_caption(report: dict) -> Text:
    """How the table was scored: chat format for every stage, distinct prompts, the split,
    what presets were tuned on, and the knowledge probe when the run made one."""
    m = report.get("metrics") if isinstance(report.get("metrics"), dict) else {}
    split = report.get("split")
    text = Text("Every stage is scored answering chats, the base model too: it saw questions "
                "in open user/assistant turns in pretraining but never a turn's end, so its "
                "answers are read up to its first special token (the claims also compare its "
                "sentence completions). ", style="dim")
    if split:
        text.append("n = distinct prompts. ", style="dim")
        text.append(f"Split: {split}. ", style="bold")
    else:
        text.append("Split not recorded and n = prompts asked, repeats included (an old "
                    "report). ", style="yellow")
    tuned = report.get("tuned_on")
    if tuned:
        text.append(f"Presets tuned on: {tuned}. ", style="bold")
    elif split:
        text.append("What presets were tuned on: not recorded. ", style="dim")
    decoding = report.get("decoding") if isinstance(report.get("decoding"), dict) else {}
    if decoding.get("temperature") == 0:
        text.append("Greedy decoding. ", style="dim")
    if m.get("probe_facts"):
        text.append(f"Knowledge probe before SFT: {fmt_num(m.get('probe_unknown'))} of "
                    f"{fmt_num(m.get('probe_facts'))} training facts marked unknown (SFT "
                    "answers those \"I don't know\").")
    return text


def families(report: dict) -> dict[str, dict]:
    fam = report.get("families")
    return {k: v for k, v in fam.items() if isinstance(v, dict)} if isinstance(fam, dict) else {}


def stages_of(reports: list[dict]) -> list[str]:
    """The stage columns present in any family of any report, known stages first."""
    seen: list[str] = []
    for report in reports:
        for row in families(report).values():
            for key, value in row.items():
                if key != "n" and key not in seen and isinstance(value, (int, float)) \
                    and not isinstance(value, bool):
                    seen.append(key)
    rank = {s: i for i, s in enumerate(REPORT_COLUMNS)}
    return sorted(seen, key=lambda s: (rank.get(s, len(rank)), seen.index(s)))


def claim_reading(claim: dict) -> str:
    """The report's own reading, or one composed from the claim's numbers."""
    reading = claim.get("reading")
    if isinstance(reading, str) and reading.strip():
        return reading
    figures = [f"{k} {fmt_score(v)}" for k, v in claim.items()
               if k not in ("id", "title", "value", "reading", "holds")
               and isinstance(v, (int, float)) and not isinstance(v, bool)]
    title = claim.get("title") or claim.get("id") or "claim"
    return f"{title}: measured {fmt_score(claim.get('value'))}" + (
        f" ({', '.join(figures)})" if figures else "")


def rl_curve_line(report: dict) -> str | None:
    """RL dynamics in one line, from ``rl_curve``: the mean of its first few steps → the mean of
    its last few (one step's reward is a handful of samples: 0.125 then 0.047 read as a fall on
    a run whose reward rose)."""
    curve = [p for p in report.get("rl_curve") or [] if isinstance(p, dict)]
    if len(curve) < 2:
        return None
    n = max(1, min(5, len(curve) // 4))
    head, tail = curve[:n], curve[-n:]
    steps = f"the mean of {n} logged steps" if n > 1 else "one logged step"
    parts = [f"RL over {fmt_num(curve[-1].get('step'))} steps ({steps} at each end):"]
    for key, label in (("reward", "reward"), ("resp_len", "mean response length")):
        first, last = _mean(head, key), _mean(tail, key)
        if first is not None or last is not None:
            parts.append(f"{label} {fmt_num(first)} → {fmt_num(last)}")
    return " ".join(parts[:1]) + " " + "; ".join(parts[1:])


def _mean(points: list[dict], key: str) -> float | None:
    values = [v for v in (num(p.get(key)) for p in points) if v is not None]
    return round(sum(values) / len(values), 4) if values else None


def claim_figure(claim: dict) -> str:
    """The claim's headline figure: a gold score (the raters' quality, about -2..1) signed,
    a pass rate as a percentage."""
    return figure_of_claim(claim, fmt_score)


def rlhf_curve_rows(report: dict) -> list[list[str]]:
    """RLHF's curve as rows: step, proxy and gold on test tasks, gold on dev, KL to SFT."""
    curve = [p for p in (report.get("rlhf") or {}).get("curve") or [] if isinstance(p, dict)]
    return [[fmt_num(p.get("step")), signed(p.get("rlhf_proxy_test")),
             signed(p.get("rlhf_gold_test")), signed(p.get("rlhf_gold_dev")),
             fmt_num(p.get("rlhf_kl"))] for p in curve]


RLHF_HEAD = ("step", "proxy (test)", "gold (test)", "gold (dev)", "KL to SFT")


def rlhf_table(report: dict) -> Table | None:
    """The gold/proxy/KL curve; the row of the peak chosen on dev in bold green."""
    rows = rlhf_curve_rows(report)
    if not rows:
        return None
    peak = fmt_num((report.get("metrics") or {}).get("rlhf_peak_step"))
    table = Table(box=None, padding=(0, 1), header_style="bold")
    for name in RLHF_HEAD:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(*row, style="bold green" if row[0] == peak else None)
    return table


def rlhf_example(report: dict) -> Text | None:
    """One test task answered by SFT, RLHF at its peak and RLHF run on: what the reward model
    learnt to love, with each reply's gold and proxy."""
    examples = (report.get("rlhf") or {}).get("examples") or []
    ex = examples[0] if examples and isinstance(examples[0], dict) else None
    if ex is None:
        return None
    text = Text(f"“{ex.get('prompt')}”\n", style="italic")
    for key, label in (("sft", "SFT"), ("peak", "RLHF (peak)"), ("final", "RLHF run on")):
        got = ex.get(key) or {}
        gold, proxy = got.get("gold"), got.get("proxy")
        text.append(f"{label:>12} ", style="bold")
        text.append(f"gold {gold:+.2f} proxy {proxy:+.2f}  " if isinstance(gold, (int, float))
                    and isinstance(proxy, (int, float)) else "", style="dim")
        text.append(_one_line(got.get("text"), 200) + "\n")
    return text


def transfer_rows(report: dict) -> list[dict]:
    """The report's transfer rows (RL minus the compute-matched control per family)."""
    return [r for r in report.get("transfer") or [] if isinstance(r, dict)
            and all(isinstance(r.get(k), (int, float)) for k in ("diff", "lo", "hi"))]


def _points(x: float) -> str:
    return f"{100 * x:+.0f}"


GOLD_NOTE = ("open_tasks: unverifiable, never practised by RL; RL, control and their difference "
             "in gold (the hidden raters' score, about -2..1), with a paired t interval")


def transfer_cells(r: dict, sep: str = " ") -> list[str]:
    """One transfer row as text: family, practised, RL, control, difference [interval], n.
    The open tasks' row is in gold, not percent, and marked unverifiable; ``sep`` joins the
    two parts of its longer cells (the pane puts them on two lines to stay in 80 columns)."""
    if r.get("unit") == GOLD:
        return [str(r.get("family")), f"left out,{sep}unverifiable", signed(r.get("rl")),
                signed(r.get("control")),
                f"{signed(r['diff'])} gold{sep}[{signed(r['lo'])}, {signed(r['hi'])}]",
                fmt_num(r.get("n"))]
    practised = ("yes" if r.get("trained") else "partly" if r.get("partly")
                 else "left out" if r.get("verifiable") else "—")
    return [str(r.get("family")), practised, fmt_score(r.get("rl")), fmt_score(r.get("control")),
            f"{_points(r['diff'])} [{_points(r['lo'])}, {_points(r['hi'])}]", fmt_num(r.get("n"))]


def transfer_table(report: dict) -> Table | None:
    """Family | practised | RL | control | RL − control [95%]: green where the whole interval
    is above zero, red where it is below, plain where it straddles zero; a row on too few
    prompts to read (its ``few``) is dim whatever its interval. Points, save the open tasks'
    row in gold, which a caption says."""
    rows = transfer_rows(report)
    if not rows:
        return None
    gold = any(r.get("unit") == GOLD for r in rows)
    table = Table(box=None, padding=(0, 1), header_style="bold",
                  caption=GOLD_NOTE if gold else None, caption_justify="left",
                  caption_style="dim")
    for name, justify in (("family", "left"), ("RL practised", "left"), ("RL", "right"),
                          ("control", "right"), ("RL − control, 95%", "right"),
                          ("n", "right")):
        table.add_column(name, justify=justify)
    for r in rows:
        cells: list = transfer_cells(r, sep="\n")
        few = bool(r.get("few"))
        cells[4] = Text(cells[4], style="dim" if few else "green" if r["lo"] > 0
                        else "red" if r["hi"] < 0 else "")
        table.add_row(*cells, style="dim" if few else None)
    return table


class ReportPane(Vertical):
    """Report card of the selected run; a second picker puts another run beside it."""

    DEFAULT_CSS = """
    ReportPane { padding: 0 1; }
    ReportPane #report-controls { height: 1; margin-bottom: 1; }
    ReportPane #report-controls Select { width: 1fr; }
    ReportPane #report-controls #report-run-b { margin-left: 2; }
    ReportPane #report-body { height: 1fr; }
    ReportPane #report-message { height: auto; }
    ReportPane #report-table { height: auto; max-height: 16; }
    ReportPane #report-caption { height: auto; }
    ReportPane #report-examples { height: auto; margin-top: 1; padding: 0 1;
                                  border-left: wide $primary; }
    ReportPane #report-claims { height: auto; margin-top: 1; }
    """

    BINDINGS = [
        Binding("a", "pick('a')", "Run"),
        Binding("b", "pick('b')", "Compare with"),
        Binding("ctrl+y", "export", "Export"),
    ]

    can_focus = True  # so a / b work right after switching to the tab

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.reports: list[tuple[str, dict]] = []  # (run name, report) shown, A first
        self._mtimes: dict[Path, float | None] = {}
        self._root = RootWatch()  # runs made or removed: the pickers list them again
        self.claim_titles: list[Text] = []  # the headlines shown, in order (tests read them)
        self.last_export: Path | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="report-controls"):
            yield Select([], prompt="run", id="report-run-a", compact=True,
                         type_to_search=False)
            yield Select([], prompt="compare with (none)", id="report-run-b", compact=True,
                         type_to_search=False)
        with VerticalScroll(id="report-body"):
            yield Static("Pick a run to see its report card.", id="report-message")
            yield DataTable(id="report-table", cursor_type="cell", zebra_stripes=True)
            yield Static("", id="report-caption")
            yield Static("", id="report-examples")
            yield Static("", id="report-claims")

    def on_mount(self) -> None:
        self._refresh_runs(force=True)
        root = checkpoints_root()
        wanted = getattr(self.app, "run_name", None)
        names = run_names(root)
        with_report = [n for n in names if (root / n / REPORT_FILE).is_file()]
        pick = wanted if wanted in names else (with_report[-1] if with_report else None)
        if pick:
            self.query_one("#report-run-a", Select).value = pick
        else:
            self.show_report()
        self.set_interval(POLL_S, self._tick)

    def on_show(self) -> None:
        focused = self.app.focused
        if focused is None or self not in focused.ancestors_with_self:
            self.focus()

    # ---- runs ----------------------------------------------------------------------------

    def _refresh_runs(self, force: bool = False) -> None:
        if not self._root.changed() and not force:
            return
        root = checkpoints_root()
        options = [(name + ("" if (root / name / REPORT_FILE).is_file() else " (no report)"), name)
                   for name in run_names(root)]
        for sid in ("#report-run-a", "#report-run-b"):
            with self.prevent(Select.Changed):
                refill(self.query_one(sid, Select), options)

    def selected(self) -> list[Path]:
        dirs = []
        for sid in ("#report-run-a", "#report-run-b"):
            value = self.query_one(sid, Select).value
            if value is not Select.NULL and str(value) not in [d.name for d in dirs]:
                dirs.append(checkpoints_root() / str(value))
        return dirs

    def _tick(self) -> None:
        self._refresh_runs()
        now = {d: _mtime(d / REPORT_FILE) for d in self.selected()}
        if now != self._mtimes:
            self.show_report()

    @on(Select.Changed)
    def _picked(self, event: Select.Changed) -> None:
        self.show_report()

    def action_pick(self, which: str) -> None:
        select = self.query_one(f"#report-run-{which}", Select)
        select.focus()
        select.action_show_overlay()

    # ---- drawing -------------------------------------------------------------------------

    def show_report(self) -> None:
        """Read the selected runs' report.json files and draw table and claims."""
        dirs = self.selected()
        self._mtimes = {d: _mtime(d / REPORT_FILE) for d in dirs}
        self.reports, problems = [], []
        for d in dirs:
            report, problem = load_report(d)
            if report is None:
                problems.append(problem or "")
            else:
                self.reports.append((d.name, report))
        message = self.query_one("#report-message", Static)
        if not dirs and not run_names(checkpoints_root()):
            message.update("Pick a run to see its report card. No run has one yet: "
                           "`deepdive train --preset tiny` makes a run and its report.")
        elif not dirs:
            message.update("Pick a run to see its report card (a: run, b: compare with).")
        else:
            lines = [self._header(name, r) for name, r in self.reports]
            if len(lines) > 1:  # columns are labelled A and B
                lines = [Text(f"{'AB'[i]} ").append_text(ln) for i, ln in enumerate(lines)]
            lines += [Text(p, style="yellow") for p in problems]
            message.update(Text("\n").join(lines))
        self._fill_table()
        self.query_one("#report-caption", Static).update(
            scoring_caption(self.reports[0][1]) if self.reports else "")
        self._show_claims()
        self.query_one("#report-examples", Static).update(
            Text("Select a cell to see the examples behind it.", style="dim")
            if self.reports else "")

    @staticmethod
    def _header(name: str, report: dict) -> Text:
        text = Text(name, style="bold").append(f"  seed {fmt_num(report.get('seed'))}")
        text.append(f"  {report['split']} split" if report.get("split") else "  old report",
                    style="" if report.get("split") else "yellow")
        if report.get("tuned_on"):
            text.append(f" · tuned on {str(report['tuned_on']).split(' ')[0]}")
        if report.get("created"):
            text.append(f"  {report['created']}", style="dim")
        return text

    def _fill_table(self) -> None:
        table = self.query_one("#report-table", DataTable)
        table.clear(columns=True)
        table.display = bool(self.reports)
        if not self.reports:
            return
        stages = stages_of([r for _, r in self.reports])
        two = len(self.reports) > 1
        table.add_column("family", key="family")
        for stage in stages:
            for i in range(len(self.reports)):
                label = STAGE_TITLES.get(stage, stage) + (f" {'AB'[i]}" if two else "")
                table.add_column(label, key=f"{i}:{stage}")
        table.add_column("n distinct", key="n")
        fams: list[str] = []
        for _, report in self.reports:
            fams += [f for f in families(report) if f not in fams]
        for fam in fams:
            cells: list[Any] = [fam]
            for stage in stages:
                for _, report in self.reports:
                    cells.append(fmt_score(families(report).get(fam, {}).get(stage)))
            n = families(self.reports[0][1]).get(fam, {}).get("n")
            cells.append(fmt_num(n))
            table.add_row(*cells, key=fam)
        rows_by_report = [{key: (label, values) for key, label, values in pass_rows(r)}
                          for _, r in self.reports]
        m = self.reports[0][1].get("metrics") or {}
        for key, _ in PASS_ROWS:
            label = next((rows[key][0] for rows in rows_by_report if key in rows), None)
            if label is None:
                continue
            cells = [Text(label, style="italic")]
            for stage in stages:
                for rows in rows_by_report:
                    cells.append(fmt_score(rows.get(key, ("", {}))[1].get(stage)))
            cells.append(fmt_num(m.get("n_eval_passk")))
            table.add_row(*cells, key=key)

    def action_export(self) -> None:
        """The report card(s) shown, as Markdown and JSON in the export folder."""
        from tui.exports import write_export

        if not self.reports:
            self.notify("No report to export: pick a run with a report card.",
                        severity="warning")
            return
        names = "-vs-".join(name for name, _ in self.reports)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            md = write_export(f"report-{names}-{stamp}.md", report_markdown(self.reports))
            write_export(f"report-{names}-{stamp}.json", json.dumps(
                {name: report for name, report in self.reports}, indent=1,
                ensure_ascii=False) + "\n")
        except OSError as e:
            self.notify(f"Could not export: {e}", severity="error")
            return
        self.last_export = md
        self.notify(f"Exported to {md} (and .json)", title="Export")

    def cell_text(self, family: str, column: str) -> str:
        """What the table shows in a cell (tests read it back)."""
        table = self.query_one("#report-table", DataTable)
        return str(table.get_cell(family, column))

    @on(DataTable.CellHighlighted, "#report-table")
    @on(DataTable.CellSelected, "#report-table")
    def _cell(self, event: DataTable.CellHighlighted | DataTable.CellSelected) -> None:
        family = str(event.cell_key.row_key.value)
        column = str(event.cell_key.column_key.value)
        if ":" not in column:
            return
        index, stage = column.split(":", 1)
        self.show_examples(family, stage, int(index))
        if isinstance(event, DataTable.CellSelected):
            self.query_one("#report-examples", Static).scroll_visible()

    def show_examples(self, family: str, stage: str, index: int = 0) -> None:
        name, report = self.reports[index]
        examples = report.get("examples") or {}
        rows = (examples.get(family) or {}).get(stage) if isinstance(examples, dict) else None
        title = f"{family} × {STAGE_TITLES.get(stage, stage)} ({name})"
        text = Text(title + "\n", style="bold")
        if not rows:
            text.append("no examples recorded for this cell", style="dim")
        for ex in (rows or [])[:MAX_EXAMPLES]:
            if not isinstance(ex, dict):
                continue
            ok = ex.get("correct")
            mark, style = ("✓", "green") if ok else ("✗", "red") if ok is False else ("·", "dim")
            text.append(f"{mark} ", style=f"bold {style}")
            text.append(_one_line(ex.get("prompt")), style="dim")
            text.append(" → ")
            text.append(_one_line(ex.get("answer")))
            if ex.get("expected") not in (None, ""):
                text.append(f"  (expected {ex['expected']})", style=style)
            text.append("\n")
        self.query_one("#report-examples", Static).update(text)

    def _show_claims(self) -> None:
        """Claims as a grid: the figure(s) on the left, title and reading wrapped on the right."""
        if not self.reports:
            self.query_one("#report-claims", Static).update("")
            return
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(ratio=1)
        grid.add_row("", Text("What the lecture claims, measured", style="bold underline"))
        self.claim_titles = []
        old = is_old_format(self.reports[0][1])
        others = [{c.get("id"): c for c in (r.get("claims") or []) if isinstance(c, dict)}
                  for _, r in self.reports[1:]]
        for claim in self.reports[0][1].get("claims") or []:
            if not isinstance(claim, dict):
                continue
            figure = Text(("A " if others else "") + claim_figure(claim), style="bold cyan")
            for by_id in others:
                other = by_id.get(claim.get("id"), {})
                figure.append(f"\nB {claim_figure(other)}", style="magenta")
            title = claim_title(claim, old)
            self.claim_titles.append(title)
            words = title.copy()
            words.append("\n" + claim_reading(claim))
            grid.add_row(figure, words)
            for extra in self._beside(claim.get("id")):
                grid.add_row("", extra)
        line = rl_curve_line(self.reports[0][1])
        if line:
            grid.add_row("", Text(line, style="dim"))
        self.query_one("#report-claims", Static).update(grid)


    def _beside(self, claim_id: Any) -> list:
        """What a claim shows under it: the transfer table, RLHF's curve and an example."""
        report = self.reports[0][1]
        if claim_id == "transfer":
            found = [transfer_table(report)]
        elif claim_id == "rlhf_not_rl":
            found = [rlhf_table(report), rlhf_example(report)]
        else:
            found = []
        return [x for x in found if x is not None]


def report_markdown(reports: list[tuple[str, dict]]) -> str:
    """The report card(s) as Markdown, every percentage through ``fmt_score``."""
    lines: list[str] = []
    for name, report in reports:
        lines += [f"# Report card — {name}", "", ReportPane._header(name, report).plain, "",
                  scoring_caption(report).plain, ""]
        stages = stages_of([report])
        head = ["family", *(STAGE_TITLES.get(s, s) for s in stages), "n distinct"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for fam, row in families(report).items():
            lines.append("| " + " | ".join([fam, *(fmt_score(row.get(s)) for s in stages),
                                            fmt_num(row.get("n"))]) + " |")
        m = report.get("metrics") or {}
        for _, label, values in pass_rows(report):
            lines.append("| " + " | ".join([label, *(fmt_score(values.get(s)) for s in stages),
                                            fmt_num(m.get("n_eval_passk"))]) + " |")
        lines += ["", "## Claims", ""]
        old = is_old_format(report)
        for claim in report.get("claims") or []:
            if not isinstance(claim, dict):
                continue
            holds = claim.get("holds")
            mark = {True: "✓", False: "✗"}.get(holds, "—") if not old else "·"
            lines += [f"- {mark} **{claim_title(claim, old).plain}** "
                      f"({claim_figure(claim)}): {claim_reading(claim)}"]
        if transfer_rows(report):
            lines += ["", "## Transfer: RL minus the compute-matched control", "",
                      "| family | RL practised | RL | control | RL − control, 95% | n |",
                      "|---|---|---|---|---|---|"]
            lines += ["| " + " | ".join(transfer_cells(r)) + " |" for r in transfer_rows(report)]
            if any(r.get("unit") == GOLD for r in transfer_rows(report)):
                lines += ["", f"{GOLD_NOTE}; the other rows: pass rates, differences in points."]
        if rlhf_curve_rows(report):
            lines += ["", "## RLHF: the reward model's score (proxy) against the raters' (gold)",
                      "", "| " + " | ".join(RLHF_HEAD) + " |", "|---|---|---|---|---|"]
            lines += ["| " + " | ".join(r) + " |" for r in rlhf_curve_rows(report)]
        example = rlhf_example(report)
        if example is not None:
            lines += ["", "```", example.plain.rstrip(), "```"]
        lines.append("")
    return "\n".join(lines)


def _one_line(value: Any, limit: int = 120) -> str:
    s = " ".join(str(value or "").split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
