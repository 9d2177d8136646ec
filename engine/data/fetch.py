"""``deepdive data fetch NAME``: a few well-known public datasets, downloaded only when asked.

Each entry names its files by URL; they go through the same downloader as GPT-2's weights
(engine/model/gpt2.download_file: a ``.part`` file resumed with HTTP Range after a dropped
connection, the size the server announced checked, a sha256 checked where one is pinned here or
stated by the server, the file appearing under its name only when whole). A file whose layout
differs from what ``deepdive data check`` reads is then rewritten into it (``prepare``), so a
fetched set trains as it is: ``deepdive train --rl-data <folder>``.

``DEEPDIVE_FETCH_MIRROR`` (a base URL) replaces every entry's scheme and host, keeping its path:
a local mirror, or the tests' server on 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from engine.run import cache_root

ENDOFTEXT = "<|endoftext|>"  # TinyStories' document separator: plain text to our readers


@dataclass(frozen=True)
class Source:
    """One downloadable file: where it is, the name it gets, its sha256 where known."""

    url: str
    name: str
    sha256: str | None = None


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # the stage it feeds: pretrain | sft | rl (what `data check --kind` takes)
    about: str
    sources: tuple[Source, ...]
    # raw file -> the file `deepdive data check` reads (None: already in that layout)
    prepare: Callable[[Path, Path], None] | None = field(default=None, compare=False)
    train_part: str = ""  # the subfolder to train on, where the set ships a test split too


def _stories_to_documents(raw: Path, out: Path) -> None:
    """TinyStories separates stories with ``<|endoftext|>`` lines; our .txt reader separates
    documents with ``---`` lines, and never reads a special token out of text."""
    with open(raw, encoding="utf-8", errors="replace") as src, \
            open(out.with_suffix(".tmp"), "w", encoding="utf-8") as dst:
        for line in src:
            dst.write("---\n" if line.strip() == ENDOFTEXT else line)
    os.replace(out.with_suffix(".tmp"), out)


GSM8K = "https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data"
TINYSTORIES = "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main"
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


def fetch_dataset(name: str, dest: Path | None = None, progress=None) -> Path:
    """Download (or resume) every file of ``name`` into ``dest`` (default: the cache) and
    prepare it; returns the folder `deepdive data check` / `deepdive train` read."""
    from engine.model.gpt2 import download_file

    data = get_dataset(name)
    folder = Path(dest) if dest else dataset_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    for src in data.sources:
        if data.prepare is None:
            (folder / src.name).parent.mkdir(parents=True, exist_ok=True)
            download_file(mirrored(src.url), folder / src.name, progress, sha256=src.sha256)
            continue
        ready = folder / Path(src.name).with_suffix(".txt").name
        if ready.exists():
            continue
        # the raw file waits in a hidden folder, which the readers skip, until it is rewritten
        (folder / ".download").mkdir(exist_ok=True)
        raw = download_file(mirrored(src.url), folder / ".download" / src.name, progress,
                            sha256=src.sha256)
        data.prepare(raw, ready)
        raw.unlink()
    return folder
