"""``deepdive eval`` (measure a run, write its report.json) and ``deepdive report`` (show it).

Engine and torch are imported inside the commands so ``deepdive --help`` stays fast.
"""

from __future__ import annotations

import json

import typer

from deepdive.commands.params import path_like


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
    app.command("report")(report_cmd)


def _run_dir(run: str):
    from engine.api import list_runs, resolve_run

    run_dir = resolve_run(run)
    if not run_dir.is_dir():
        names = ", ".join(r.name for r in list_runs()) or "none"
        typer.echo(f"error: no run {run!r} at {run_dir} (runs here: {names})", err=True)
        raise typer.Exit(2)
    return run_dir


def eval_cmd(
    run: str = typer.Option(..., "--run", help="run name (under the checkpoints folder) or path",
                            callback=path_like),
    as_json: bool = typer.Option(False, "--json", help="print the report as one JSON line, last"),
    n: int = typer.Option(100, "--n", min=1, help="problems per task family"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, mps"),
    seed: int = typer.Option(0, "--seed", help="which held-out problems are drawn"),
    split: str = typer.Option("test", "--split",
                              help="test (the report card) or dev (for tuning presets)"),
) -> None:
    """Evaluate every stage of a run on held-out problems and write its report.json."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.api import CheckpointError, RunFolder, evaluate_run

    if split not in ("test", "dev"):
        typer.echo(f"error: --split must be test or dev, not {split!r} (train is what the "
                   "stages learnt from)", err=True)
        raise typer.Exit(2)
    run_dir = _run_dir(run)
    if not RunFolder(run_dir).models():
        typer.echo(f"error: {run_dir} has no trained model yet (base/, sft/ or rl/); "
                   f"train it first: deepdive train --run {run_dir.name}", err=True)
        raise typer.Exit(2)
    console = Console(stderr=as_json)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
                "{task.completed}/{task.total}"), TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("evaluating", total=None)

            def progress(done, total=None, label=""):
                bar.update(task, completed=done, total=total, description=label or "evaluating")

            report = evaluate_run(run_dir, device=device, n_per_family=n, progress=progress,
                                  seed=seed, split=split)
    except (CheckpointError, ValueError) as e:  # ValueError: --device names none here
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps({"run": report["run"], "split": split,
                               "metrics": report["metrics"], "families": report["families"]},
                              allow_nan=False))
    else:
        _print_report(console, report)
        console.print(f"[dim]wrote {RunFolder(run_dir).report(split)} in "
                      f"{report.get('eval_s', '?')} s")


def report_cmd(
    run: str = typer.Option(..., "--run", help="run name or path", callback=path_like),
    as_json: bool = typer.Option(False, "--json", help="print report.json as one JSON line"),
) -> None:
    """Show a run's report card (made by ``deepdive eval`` or the train pipeline)."""
    from rich.console import Console

    from engine.api import RunFolder

    path = RunFolder(_run_dir(run)).report()
    if not path.is_file():
        typer.echo(f"error: {path} does not exist; make it with: deepdive eval --run {run}",
                   err=True)
        raise typer.Exit(2)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(report, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as e:
        typer.echo(f"error: {path} is not a readable report ({e}); run deepdive eval again",
                   err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(report, allow_nan=False))
        return
    _print_report(Console(), report)


def _fmt(x) -> str:
    return "—" if not isinstance(x, (int, float)) else f"{100 * x:.0f}%"


def _print_report(console, report: dict) -> None:
    from rich.table import Table

    from engine.api import REPORT_COLUMNS, claim_figure

    fams = report.get("families") or {}
    stages = [s for s in REPORT_COLUMNS if any(s in (row or {}) for row in fams.values())]
    split = report.get("split", "held-out")
    table = Table(title=f"report card: {report.get('run', '?')} (greedy, {split} split; "
                        f"n = distinct prompts)")
    table.add_column("family")
    for s in stages:
        table.add_column(s, justify="right")
    table.add_column("n", justify="right", style="dim")
    for fam, row in fams.items():
        table.add_row(fam, *(_fmt(row.get(s)) for s in stages), str(row.get("n", "")))
    console.print(table)
    m = report.get("metrics") or {}
    if "arith_passk_sft" in m:
        console.print(f"sums, {m.get('passk_samples')} samples at T=1: pass@1 "
                      + ", ".join(f"{s} {_fmt(m.get(f'arith_pass1_{s}'))}" for s in
                                  ("sft", "rl", "sft_control") if f"arith_pass1_{s}" in m)
                      + f"; pass@{m.get('passk_k')} "
                      + ", ".join(f"{s} {_fmt(m.get(f'arith_passk_{s}'))}" for s in
                                  ("sft", "rl", "sft_control") if f"arith_passk_{s}" in m))
    if report.get("tuned_on"):
        console.print(f"[dim]presets tuned on: {report['tuned_on']}; this card reads the "
                      f"{split} split")
    for claim in report.get("claims") or []:
        colour = {True: "green", False: "red"}.get(claim.get("holds"), "dim")
        console.print(f"[bold {colour}]{claim.get('title', claim.get('id', ''))}[/] "
                      f"({claim_figure(claim, _fmt)}): {claim.get('reading', '')}")
