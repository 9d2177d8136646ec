"""``deepdive tokenize`` and ``deepdive tokenizer train``.

The engine (tiktoken, regex) is imported inside the commands so ``deepdive --help`` stays fast;
nothing here imports torch.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from deepdive.commands.params import path_like

DEFAULT_ENCODING = "cl100k_base"


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def tokenize(
    text: Annotated[str, typer.Argument(help="The text to tokenize; - reads it from stdin.")],
    encoding: Annotated[str | None, typer.Option(
        "--encoding", "-e", help=f"cl100k_base, o200k_base, a tokenizer.json path, ... "
        f"(default {DEFAULT_ENCODING}).", callback=path_like)] = None,
    run: Annotated[str | None, typer.Option(
        "--run", help="Use a run's tokenizer (name under checkpoints/ or path).",
        callback=path_like)] = None,
    chat: Annotated[bool, typer.Option(
        "--chat", help="Treat TEXT as a user message in the chat format: ours for a run's "
        "tokenizer, <|im_start|>role<|im_sep|>...<|im_end|> for cl100k/o200k.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help='One JSON object: {"encoding", "ids", "tokens", "n_tokens", "n_chars", '
        '"n_bytes"}.')] = False,
) -> None:
    """Show how an encoding cuts TEXT into tokens."""
    if encoding is not None and run is not None:
        raise fail("give --encoding or --run, not both")
    if text == "-":
        try:
            text = sys.stdin.read()
        except (OSError, UnicodeDecodeError) as e:
            raise fail(f"cannot read stdin ({e})") from None
        if chat:  # `echo hi | deepdive tokenize --chat -`: the newline ends the input, not the turn
            text = text.removesuffix("\n").removesuffix("\r")
    tok = _load(encoding, run)
    if chat:
        from engine.api import has_chat_format, render_chat, render_prompt

        messages = [{"role": "user", "content": text}]
        try:
            # ready for the reply: the cl100k/o200k layout too ends with
            # <|im_start|>assistant<|im_sep|>
            if has_chat_format(tok) == "deepdive":
                ids = render_prompt(tok, messages)
            else:
                ids = render_chat(tok, messages)
        except ValueError as e:
            raise fail(str(e)) from None
    else:
        ids = tok.encode(text)
    # Counts are of the text the tokens spell: TEXT itself, or with --chat the whole rendered
    # conversation (special-token strings included), so chars/token compares like with like.
    spelled = tok.enc.decode_bytes(ids)
    n_chars = len(spelled.decode("utf-8", errors="replace"))
    if as_json:
        print(json.dumps({
            "encoding": tok.name,
            "ids": ids,
            # one entry per id; bytes that are not whole UTF-8 characters become \xNN escapes
            "tokens": [tok.token_text(i) for i in ids],
            "n_tokens": len(ids),
            "n_chars": n_chars,
            "n_bytes": len(spelled),
        }, ensure_ascii=False))
        return
    _show(tok, ids, n_chars, len(spelled))


def _load(encoding: str | None, run: str | None):
    from engine.api import (
        ReferenceDataError,
        Tokenizer,
        TokenizerFileError,
        UnknownEncodingError,
        get_encoding,
    )

    if run is not None:
        from engine.api import RunFolder

        folder = RunFolder.of(run)
        run_dir, path = folder.path, folder.tokenizer
        if not path.is_file():
            why = "no such run" if not run_dir.is_dir() else "it has no tokenizer.json"
            raise fail(f"run {run!r} ({run_dir}): {why}. List runs with: deepdive runs")
        try:
            return Tokenizer.load(path, name=f"run:{run_dir.name}")
        except TokenizerFileError as e:
            raise fail(str(e)) from None
    try:
        return get_encoding(encoding or DEFAULT_ENCODING)
    except (UnknownEncodingError, TokenizerFileError, ReferenceDataError) as e:
        raise fail(str(e)) from None


# Chip backgrounds, alternating so neighbouring tokens stay apart; specials stand out.
CHIP_STYLES = ("black on #a5d8ff", "black on #ffd8a8", "black on #b2f2bb", "black on #eebefa")
SPECIAL_STYLE = "bold white on #5f3dc4"
PARTIAL_STYLE = "black on #ffc9c9"
VISIBLE_WHITESPACE = str.maketrans({" ": "⋅", "\t": "→", "\n": "↵\n"})


BOUNDARY = "|"  # between tokens where there is no colour to tell them apart


def _show(tok, ids: list[int], n_chars: int, n_bytes: int) -> None:
    """Tokens as coloured chips (whitespace made visible), their ids, then the counts. Without
    colour (piped, NO_COLOR, a dumb terminal) the tokens are joined by ``|``: ``str|aw|berry``."""
    from rich.console import Console
    from rich.text import Text

    from engine.api import token_pieces

    console = Console(highlight=False)
    coloured = console.color_system is not None and not console.no_color
    out = Text()
    for k, piece in enumerate(token_pieces(tok, ids)):
        if k and not coloured:
            out.append(BOUNDARY, style="dim")
        if piece.special:
            style = SPECIAL_STYLE
        elif piece.partial:
            style = PARTIAL_STYLE
        else:
            style = CHIP_STYLES[k % len(CHIP_STYLES)]
        out.append(piece.text.translate(VISIBLE_WHITESPACE), style=style)
    console.print(out)
    console.print(f"ids: {ids}", style="dim")
    per = f"{n_chars / len(ids):.2f}" if ids else "-"
    console.print(f"{tok.name}: {len(ids)} tokens, {n_chars} chars, {n_bytes} bytes, "
                  f"{per} chars/token")


tokenizer_app = typer.Typer(help="Train byte-level BPE tokenizers.", no_args_is_help=True)


@tokenizer_app.command("train")
def train(
    data: Annotated[list[Path], typer.Option(
        "--data", help="Text file(s) to learn from; a folder means its *.txt files. "
        "Repeat for more.", callback=path_like)],
    vocab_size: Annotated[int, typer.Option(
        "--vocab-size", help="Tokens in all: 256 bytes + merges + the chat special tokens.")],
    out: Annotated[Path, typer.Option(
        "--out", help="Where to write the tokenizer: a .json path, or a folder that gets "
        "tokenizer.json inside (a run folder, say).", callback=path_like)],
    name: Annotated[str, typer.Option("--name", help="The encoding's name.")] = "deepdive",
) -> None:
    """Learn a byte-level BPE (digits split one by one) and save it as tokenizer.json."""
    from engine.api import SPECIAL_TOKENS, TOKENIZER_FILE

    smallest = 256 + len(SPECIAL_TOKENS)
    if vocab_size < smallest:
        raise fail(f"--vocab-size must be at least {smallest} (256 bytes + "
                   f"{len(SPECIAL_TOKENS)} special tokens), got {vocab_size}")
    files = _data_files(data)
    # a folder (existing, or any path not ending in .json) gets tokenizer.json inside
    target = out / TOKENIZER_FILE if out.is_dir() or out.suffix != ".json" else out
    texts = []
    for f in files:  # read everything first: a bad file fails before minutes of training
        try:
            texts.append(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            raise fail(f"cannot read {f} ({getattr(e, 'strerror', None) or e})") from None
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    if not any(t.strip() for t in texts):
        raise fail(f"no text to train on: {', '.join(map(str, files))} "
                   f"{'is' if len(files) == 1 else 'are'} empty")

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from engine.api import train_bpe

    t0 = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        reading = bar.add_task("counting chunks", total=len(texts))
        merging = bar.add_task("learning merges", total=vocab_size - smallest, start=False)

        def counted():  # advances the first bar as train_bpe consumes the texts
            for t in texts:
                yield t
                bar.advance(reading)

        learned = [0]

        def on_merge(done: int, total: int) -> None:
            bar.start_task(merging)
            bar.update(merging, completed=done, total=total)
            learned[0] = done

        try:
            tok = train_bpe(counted(), vocab_size, progress=on_merge, name=name)
        except ValueError as e:
            raise fail(str(e)) from None
        bar.update(reading, completed=len(texts))
        bar.update(merging, total=learned[0])  # a small text can run out of pairs early
    try:
        tok.save(target)
    except OSError as e:
        raise fail(f"cannot write {target} ({e.strerror or e})") from None
    seconds = time.perf_counter() - t0
    typer.echo(f"wrote {target}: {tok.n_vocab} tokens from {n_bytes / 1e6:.2f} MB "
               f"in {seconds:.1f} s")
    if tok.n_vocab < vocab_size:
        typer.secho(f"notice: the text ran out of pairs to merge; the vocabulary has "
                    f"{tok.n_vocab} tokens, not {vocab_size}. Give it more text.",
                    err=True, fg="yellow")


def _data_files(paths: list[Path]) -> list[Path]:
    files = []
    for p in paths:
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.txt") if q.is_file())
            if not found:
                raise fail(f"no text to train on: {p} holds no *.txt files")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise fail(f"cannot read {p}: no such file or folder")
    return files


def register(app: typer.Typer) -> None:
    app.command()(tokenize)
    app.add_typer(tokenizer_app, name="tokenizer")
