"""What ``deepdive data check`` reports about a data path: how much is usable, what is bad."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.data.files import BadRow, OnBad
from engine.data.readers import READERS

DATA_KINDS = tuple(READERS)
UNITS = {"pretrain": "documents", "sft": "conversations", "rl": "problems"}


@dataclass
class DataCheck:
    kind: str
    files: list[Path]
    n_items: int
    n_tokens: int | None  # pretraining only: text tokens plus one <|bos|> per document
    problems: list[BadRow]

    @property
    def unit(self) -> str:
        return UNITS[self.kind]


def check_data(path: str | Path, kind: str, on_bad: OnBad = "skip", tok=None) -> DataCheck:
    """Read ``path`` as ``kind`` data; DataFileError when refused, missing or unreadable."""
    if kind not in READERS:
        raise ValueError(f"kind must be one of {', '.join(DATA_KINDS)}, got {kind!r}")
    loaded = READERS[kind](path, on_bad)
    n_tokens = None
    if kind == "pretrain" and tok is not None:  # Tokenizer.encode: user text is never special
        n_tokens = sum(len(ids) + 1 for ids in tok.encode_batch(loaded.items))
    return DataCheck(kind, loaded.files, len(loaded.items), n_tokens, loaded.problems.rows)
