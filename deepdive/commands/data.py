"""``deepdive data check``: read a data file or folder as one stage would, and say what is usable.

The engine is imported inside the command so ``deepdive --help`` stays fast; nothing here
imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from deepdive.commands.params import path_like

SHOWN_PROBLEMS = 20  # bad rows listed; the rest are counted
Kind = Literal["pretrain", "sft", "rl"]
OnBad = Literal["skip", "refuse"]


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


data_app = typer.Typer(help="Fetch public datasets; check data files before training on them.",
                       no_args_is_help=True)


@data_app.command("check")
def check(
    path: Annotated[Path, typer.Argument(
        help="A file or a folder (read recursively, in sorted order).", callback=path_like)],
    kind: Annotated[Kind, typer.Option(
        "--kind", help="pretrain (.txt, .jsonl with 'text', .parquet), sft (.jsonl with "
        "'messages') or rl (.jsonl with 'question' and an 'answer' ending '#### 42').")],
    on_bad: Annotated[OnBad, typer.Option(
        "--on-bad", help="skip: list bad rows and count the rest; refuse: stop (exit 2) at "
        "the first bad row.")] = "skip",
    encoding: Annotated[str, typer.Option(
        "--encoding", "-e", help="The encoding that counts pretraining tokens "
        "(cl100k_base, o200k_base, run:NAME, a tokenizer.json path).",
        callback=path_like)] = "cl100k_base",
) -> None:
    """Count what PATH holds for a stage and list its bad rows as path:line: what is wrong."""
    from engine.api import DataFileError, check_data

    tok = _encoding(encoding) if kind == "pretrain" else None
    try:
        report = check_data(path, kind, on_bad, tok)
    except DataFileError as e:
        raise fail(str(e)) from None
    _show(path, report, tok)
    if not report.n_items:
        raise fail(f"{path}: no usable {report.unit}")


def _encoding(name: str):
    from engine.api import (
        ReferenceDataError,
        TokenizerFileError,
        UnknownEncodingError,
        get_encoding,
    )

    try:
        return get_encoding(name)
    except (UnknownEncodingError, TokenizerFileError, ReferenceDataError) as e:
        raise fail(f"--encoding: {e}") from None


def _show(path: Path, report, tok) -> None:
    n_files = len(report.files)
    typer.echo(f"{path}: {report.kind} data in {n_files} file{'s' * (n_files != 1)}")
    unit = report.unit if report.n_items != 1 else report.unit[:-1]  # 1 document, 2 documents
    line = f"  {report.n_items:,} {unit}"
    if report.n_tokens is not None:
        line += f", {report.n_tokens:,} tokens ({tok.name}, one <|bos|> per document)"
    typer.echo(line)
    if not report.problems:
        typer.echo("  no bad rows")
        return
    n_bad = len(report.problems)
    typer.echo(f"  {n_bad:,} bad row{'s' * (n_bad != 1)} skipped:")
    for row in report.problems[:SHOWN_PROBLEMS]:
        typer.echo(f"    {row}")
    if len(report.problems) > SHOWN_PROBLEMS:
        typer.echo(f"    … and {len(report.problems) - SHOWN_PROBLEMS:,} more")


@data_app.command("fetch")
def fetch(
    name: Annotated[str | None, typer.Argument(
        help="A dataset's name (see --list).", callback=path_like)] = None,
    dest: Annotated[Path | None, typer.Option(
        "--dest", help="Folder to put it in (default: ~/.cache/deepdive/data/NAME).",
        callback=path_like)] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the datasets and exit.")] = False,
) -> None:
    """Download a well-known public dataset (only when asked; resumable; size/hash checked)."""
    from engine.api import (
        DATASETS,
        DataFileError,
        DownloadError,
        UnknownDatasetError,
        fetch_dataset,
    )

    if list_ or name is None:
        for d in DATASETS.values():
            typer.echo(f"{d.name:<18} {d.kind:<8} {d.about}")
        if name is None and not list_:
            raise fail("give a dataset's name (deepdive data fetch --list shows them)")
        return
    from deepdive.commands.model import ProgressLine

    try:
        folder = fetch_dataset(name, dest, progress=ProgressLine(), say=_said)
    # DataFileError: pyarrow missing for a parquet set, or a whole file not in the set's layout
    except (UnknownDatasetError, DataFileError) as e:
        raise fail(str(e)) from None
    except (DownloadError, OSError) as e:
        raise fail(f"{e} (offline? a rerun resumes where it stopped)") from None
    data = DATASETS[name]
    train = folder / data.train_part if data.train_part else folder
    typer.echo(f"\n{name} -> {folder}  (check: deepdive data check {train} --kind {data.kind}; "
               f"train: deepdive train --{data.kind}-data {train})")


def _said(note: str) -> None:
    typer.echo(f"\n{note}")  # after the progress line (stderr), which ends without a newline


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
