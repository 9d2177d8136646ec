"""``deepdive data fetch NAME``: a few well-known public datasets, downloaded only when asked.

Each entry names its files by URL; they go through the same downloader as GPT-2's weights
(engine/model/gpt2.download_file: a ``.part`` file resumed with HTTP Range after a dropped
connection, the size the server announced checked, a sha256 checked where one is pinned here or
stated by the server, the file appearing under its name only when whole). A file whose layout
differs from what ``deepdive data check`` reads is then rewritten into it (``prepare``), so a
fetched set trains as it is: ``deepdive train --rl-data <folder>``. A raw file waits in the
hidden ``.download`` folder and a rewrite is written to a hidden ``.NAME.part`` (the readers skip
both), so a download or a rewrite cut short never leaves a readable half file.

``DEEPDIVE_FETCH_MIRROR`` (a base URL) replaces every entry's scheme and host, keeping its path:
a local mirror, or the tests' server on 127.0.0.1.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from engine.data.files import DataFileError
from engine.data.readers import PARQUET_HINT, conversation_problem
from engine.run import cache_root

ENDOFTEXT = "<|endoftext|>"  # TinyStories' document separator: plain text to our readers


@dataclass(frozen=True)
class Source:
    """One downloadable file: where it is, the name it gets, its sha256 where known."""

    url: str
    name: str
    sha256: str | None = None


# A rewrite: (raw file, the file to write) -> a line for the user ("" if nothing to say).
Prepare = Callable[[Path, Path], str]


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # the stage it feeds: pretrain | sft | rl (what `data check --kind` takes)
    about: str
    sources: tuple[Source, ...]
    # raw file -> the file `deepdive data check` reads (None: already in that layout)
    prepare: Prepare | None = field(default=None, compare=False)
    train_part: str = ""  # the subfolder to train on, where the set ships a test split too
    ready_suffix: str = ".txt"  # the file type ``prepare`` writes
    needs_parquet: bool = False  # only readable with the optional extra (pyarrow)


@contextmanager
def _written(out: Path) -> Iterator[TextIO]:
    """A text file that appears as ``out`` only once wholly written: until then it is the hidden
    ``.NAME.part`` beside it, which no reader reads."""
    part = out.with_name(f".{out.name}.part")
    try:
        with open(part, "w", encoding="utf-8") as f:
            yield f
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, out)


def _stories_to_documents(raw: Path, out: Path) -> str:
    """TinyStories separates stories with ``<|endoftext|>`` lines; our .txt reader separates
    documents with ``---`` lines, and never reads a special token out of text."""
    with open(raw, encoding="utf-8", errors="replace") as src, _written(out) as dst:
        for line in src:
            dst.write("---\n" if line.strip() == ENDOFTEXT else line)
    return ""


def _alpaca_messages(row: object) -> list[dict] | None:
    """An Alpaca row ``{instruction, input, output}`` as one user turn (the instruction, then
    its input after a blank line where there is one) and the assistant's answer; None where
    that is not a conversation the SFT reader takes (an empty output, a field not text)."""
    if not isinstance(row, dict):
        return None
    user, context = row.get("instruction"), row.get("input") or ""  # no input: "" (or null)
    if not isinstance(context, str):
        return None
    if isinstance(user, str) and user.strip() and context.strip():
        user = f"{user}\n\n{context}"
    messages = [{"role": "user", "content": user},
                {"role": "assistant", "content": row.get("output")}]
    return None if conversation_problem(messages) else messages  # the reader's own rules


def _alpaca_to_conversations(raw: Path, out: Path) -> str:
    """Alpaca's JSON list -> one ``{"messages": [...]}`` line per row; rows that cannot be a
    conversation are skipped and counted, not fatal."""
    try:
        rows = json.loads(raw.read_bytes())
    except (ValueError, RecursionError) as e:  # JSON, or UTF-8, broken: not the set we asked for
        raise DataFileError(f"{raw.name}: not a JSON file ({e})") from None
    if not isinstance(rows, list):
        raise DataFileError(f"{raw.name}: expected a JSON list of rows")
    kept = 0
    with _written(out) as dst:
        for row in rows:
            if (messages := _alpaca_messages(row)) is not None:
                # ensure_ascii=False: the text as written; the reader keeps it ordinary text
                dst.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
                kept += 1
    skipped = len(rows) - kept
    return (f"{out.name}: {kept:,} conversations, {skipped:,} row{'s' * (skipped != 1)} "
            "skipped (an instruction or output empty or not text)")


def _require_pyarrow(name: str) -> None:
    """Refuse before a download that nothing here could read (pyarrow is an optional extra)."""
    try:
        importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise DataFileError(f"{name} is a .parquet file; reading it needs pyarrow: "
                            f"{PARQUET_HINT}") from None


def _parquet_with_text(raw: Path, out: Path) -> str:
    """Kept as it is (the pretraining reader reads .parquet), moved in only once its footer
    shows a ``text`` column: a whole file of the wrong kind is not left for training to find."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(raw).metadata
        columns = meta.schema.to_arrow_schema().names
    except Exception as e:  # noqa: BLE001 - pyarrow raises many kinds; a file is never a crash
        raise DataFileError(f"{raw.name}: not a parquet file ({type(e).__name__}: {e})") from None
    if "text" not in columns:
        raise DataFileError(f"{raw.name}: no 'text' column (it has {', '.join(columns)})")
    os.replace(raw, out)
    return f"{out.name}: {meta.num_rows:,} rows in its 'text' column"


GSM8K = "https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data"
TINYSTORIES = "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main"
# nanochat's pre-shuffled FineWeb-Edu shards (1,823 of ~100 MB); the first is a fair sample
FINEWEB_EDU = "https://huggingface.co/datasets/karpathy/fineweb-edu-100b-shuffle/resolve/main"
ALPACA = "https://raw.githubusercontent.com/tatsu-lab/stanford_alpaca/main"
DATASETS = {d.name: d for d in (
    Dataset("gsm8k", "rl", "grade-school maths word problems, answers after '####' "
            "(OpenAI, 7,473 train + 1,319 test)",
            # in folders of their own: training on the dataset's folder must not take in its
            # test split (the readers read a folder recursively)
            (Source(f"{GSM8K}/train.jsonl", "train/train.jsonl"),
             Source(f"{GSM8K}/test.jsonl", "test/test.jsonl")), train_part="train"),
    Dataset("tinystories-valid", "pretrain", "short stories in simple English (TinyStories' "
            "validation file, ~22k stories, ~19 MB)",
            (Source(f"{TINYSTORIES}/TinyStories-valid.txt", "TinyStories-valid.txt"),),
            prepare=_stories_to_documents),
    Dataset("fineweb-edu-sample", "pretrain", "educational web pages (FineWeb-Edu, one "
            "pre-shuffled shard of nanochat's, ~100 MB parquet; needs pyarrow)",
            (Source(f"{FINEWEB_EDU}/shard_00000.parquet", "shard_00000.parquet"),),
            prepare=_parquet_with_text, ready_suffix=".parquet", needs_parquet=True),
    Dataset("alpaca", "sft", "instructions and answers (Stanford Alpaca, 52k rows, ~22 MB; "
            "CC BY-NC 4.0), rewritten as user/assistant conversations",
            (Source(f"{ALPACA}/alpaca_data.json", "alpaca_data.json"),),
            prepare=_alpaca_to_conversations, ready_suffix=".jsonl"),
)}


class UnknownDatasetError(ValueError):
    pass


def get_dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownDatasetError(f"unknown dataset {name!r}; choose one of "
                                  f"{', '.join(DATASETS)}") from None


def mirrored(url: str) -> str:
    """``url`` on ``$DEEPDIVE_FETCH_MIRROR`` when set (same path), else unchanged."""
    mirror = os.environ.get("DEEPDIVE_FETCH_MIRROR")
    if not mirror:
        return url
    return mirror.rstrip("/") + urlsplit(url).path


def dataset_dir(name: str) -> Path:
    """A registry name, never a path from outside, under the cache root."""
    return cache_root() / "data" / get_dataset(name).name


def fetch_dataset(name: str, dest: Path | None = None, progress=None,
                  say: Callable[[str], None] | None = None) -> Path:
    """Download (or resume) every file of ``name`` into ``dest`` (default: the cache) and
    prepare it; returns the folder `deepdive data check` / `deepdive train` read. ``say`` gets
    what a rewrite has to tell (rows it skipped)."""
    from engine.model.gpt2 import download_file

    data = get_dataset(name)
    if data.needs_parquet:
        _require_pyarrow(name)
    folder = Path(dest) if dest else dataset_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    for src in data.sources:
        if data.prepare is None:
            (folder / src.name).parent.mkdir(parents=True, exist_ok=True)
            download_file(mirrored(src.url), folder / src.name, progress, sha256=src.sha256)
            continue
        ready = folder / Path(src.name).with_suffix(data.ready_suffix).name
        if ready.exists():
            continue
        # the raw file waits in a hidden folder, which the readers skip, until it is rewritten
        (folder / ".download").mkdir(exist_ok=True)
        raw = download_file(mirrored(src.url), folder / ".download" / src.name, progress,
                            sha256=src.sha256)
        try:
            note = data.prepare(raw, ready)
        except DataFileError:
            raw.unlink(missing_ok=True)  # whole but not the set's layout: the next run fetches anew
            raise
        raw.unlink(missing_ok=True)  # (a kept-as-is file was moved, not copied)
        if note and say:
            say(note)
    return folder
