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


data_app = typer.Typer(help="Check a user's data files before training on them.",
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


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
