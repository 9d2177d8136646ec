"""A user's own data in a run: which files each stage adds to the world's rows, and what
run.json records about them so ``--resume`` trains on the same files.

- pretraining: the files' documents, tokenized with the run's own tokenizer into a token shard
  (engine/data/shards.py), joined to the world's documents; the tokenizer's BPE also reads a
  bounded sample of them (``TOKENIZER_SAMPLE_CHARS``), so their text is not byte soup.
- SFT: the file's conversations join the world's; a leading system message is folded into the
  first user turn (``fold_system``): the world's chats and every prompt the app and the report
  card send have no system turn, so a model never learns to read one there.
- RL: the file's GSM8K-style problems (family "file", judged by engine.data.judge.verify) join
  the training problems; the periodic eval stays on the world's dev problems.

The SFT and RL files are read when the run starts (before anything is written, so a refused row
stops a new run cleanly); a pretraining corpus may be large, so it is read by the tokenizer and
pretrain stages as it is needed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.data.files import ON_BAD, DataFileError, OnBad, Problems, find_files
from engine.data.readers import (
    JSONL,
    PRETRAIN_SUFFIXES,
    iter_documents,
    read_conversations,
    read_problems,
)
from engine.data.tasks import Problem

TOKENIZER_SAMPLE_CHARS = 1_000_000  # of the user's documents, for the BPE: bounded time
DATA_STAGES = ("pretrain", "sft", "rl")


@dataclass(frozen=True)
class DataPaths:
    """The files a run adds to the world, as absolute paths (None: that stage adds none)."""

    pretrain: Path | None = None
    sft: Path | None = None
    rl: Path | None = None
    on_bad: OnBad = "skip"

    def given(self) -> bool:
        return any(getattr(self, s) is not None for s in DATA_STAGES)


def data_paths(pretrain: str | Path | None = None, sft: str | Path | None = None,
               rl: str | Path | None = None, on_bad: str = "skip") -> DataPaths:
    """Resolve and check the paths (each must hold files of its kind); DataFileError if not."""
    if on_bad not in ON_BAD:
        raise DataFileError(f"--on-bad must be one of {', '.join(ON_BAD)}, got {on_bad!r}")
    suffixes = {"pretrain": PRETRAIN_SUFFIXES, "sft": JSONL, "rl": JSONL}
    resolved: dict[str, Path | None] = {}
    for stage, value in (("pretrain", pretrain), ("sft", sft), ("rl", rl)):
        resolved[stage] = None if value is None else Path(value).expanduser().resolve()
        if resolved[stage] is not None:
            find_files(resolved[stage], suffixes[stage])  # missing, empty, wrong type: said now
    return DataPaths(**resolved, on_bad=on_bad)  # type: ignore[arg-type]


def paths_from_record(data: dict) -> DataPaths:
    """The DataPaths a run.json ``data`` field names (none for a world-only run)."""
    paths = {s: Path(data[s]["path"]) if isinstance(data.get(s), dict) else None
             for s in DATA_STAGES}
    return DataPaths(**paths, on_bad=data.get("on_bad", "skip"))  # type: ignore[arg-type]


def fold_system(messages: list[dict]) -> list[dict]:
    """A leading system message becomes the opening paragraph of the first user turn."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, first, *rest = messages
    merged = {"role": "user", "content": f"{system['content']}\n\n{first['content']}"}
    return [merged, *rest]


def rows_digest(rows: list) -> str:
    """A sha256 of what was read (not of the files' bytes): a resume checks it is unchanged."""
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()


@dataclass
class UserData:
    """What the SFT and RL files gave, and run.json's record of every file a stage adds."""

    paths: DataPaths = field(default_factory=DataPaths)
    conversations: list[list[dict]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    record: dict = field(default_factory=dict)

    def pretrain_sample(self, max_chars: int | None = TOKENIZER_SAMPLE_CHARS) -> list[str]:
        """The first documents of the pretraining files, up to ``max_chars`` characters (the
        last one cut there); None: all of them."""
        if self.paths.pretrain is None:
            return []
        sample: list[str] = []
        n = 0
        problems = Problems(self.paths.on_bad)
        for doc in iter_documents(find_files(self.paths.pretrain, PRETRAIN_SUFFIXES), problems):
            sample.append(doc if max_chars is None else doc[: max_chars - n])
            n += len(sample[-1])
            if max_chars is not None and n >= max_chars:
                break
        return sample


def load_user_data(paths: DataPaths) -> UserData:
    """Read the SFT and RL files now; record every path (DataFileError on a refused row)."""
    data = UserData(paths)
    if paths.given():
        data.record["on_bad"] = paths.on_bad
    if paths.pretrain is not None:
        data.record["pretrain"] = {"path": str(paths.pretrain)}
    if paths.sft is not None:
        loaded = read_conversations(paths.sft, paths.on_bad)
        _require_rows(paths.sft, loaded.items, "conversations", "sft")
        data.conversations = [fold_system(c) for c in loaded.items]
        data.record["sft"] = _entry(paths.sft, loaded, "conversations", data.conversations)
    if paths.rl is not None:
        loaded = read_problems(paths.rl, paths.on_bad)
        _require_rows(paths.rl, loaded.items, "problems", "rl")
        data.problems = loaded.items
        rows = [[p.prompt, p.answer] for p in loaded.items]
        data.record["rl"] = _entry(paths.rl, loaded, "problems", rows)
    return data


def _require_rows(path: Path, items: list, unit: str, kind: str) -> None:
    if not items:
        raise DataFileError(f"{path}: no usable {unit} (check them with: deepdive data check "
                            f"{path} --kind {kind})")


def _entry(path: Path, loaded, unit: str, rows: list) -> dict:
    return {"path": str(path), "files": len(loaded.files), unit: len(loaded.items),
            "bad_rows": len(loaded.problems.rows), "sha256": rows_digest(rows)}


def shard_entry(path: Path, shard) -> dict:
    """run.json's record of the pretraining files once tokenized (the shard's cache key)."""
    h = shard.header
    return {"path": str(path), "files": len(h["files"]), "documents": h["n_docs"],
            "tokens": h["n_tokens"], "bad_rows": h["n_problems"], "shard": h["key"]}
