"""Pretraining documents tokenized once, into a cached token shard reused by every later run.

A shard is three files in the cache folder, named by its key:

    <key>.tokens   the token ids, raw little-endian uint16 (a vocabulary of at most 65,536 ids)
                   or uint32, as pretraining packs them: ``<|bos|> doc <|bos|> doc ...``
                   (``render_document``); read back as a read-only numpy memmap
    <key>.docs     where each document starts in the tokens, raw little-endian int64
    <key>.json     the header: format, dtype, counts, the files, the bad rows skipped

The key is a sha256 of the input files (their names inside the given folder and their bytes),
the tokenizer's identity (its split pattern, merges and special tokens, not its name) and this
format's version: change a file or the tokenizer and a new shard is built; otherwise the shard on
disk is used as it is. Each file is written to a temporary name and renamed into place
(``os.replace``), the header last, so a shard whose header exists is whole; a killed build leaves
only temporary files. No pickle: raw arrays and JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.files import BadRow, DataFileError, OnBad, Problems, find_files
from engine.data.readers import PRETRAIN_SUFFIXES, iter_documents
from engine.run import cache_root
from engine.tokens.chat import render_document

FORMAT = "deepdive.shard"
VERSION = 1
KEPT_PROBLEMS = 1000  # bad rows the header lists (all are counted)


def default_cache_dir() -> Path:
    """$DEEPDIVE_CACHE/shards, else ~/.cache/deepdive/shards (where downloads go too)."""
    return cache_root() / "shards"


def token_dtype(n_vocab: int) -> np.dtype:
    """uint16 halves the file (and the memory a batch reads) whenever every id fits in it."""
    return np.dtype("<u2") if n_vocab <= 2**16 else np.dtype("<u4")


@dataclass
class Shard:
    tokens: np.ndarray  # read-only memmap of every document's ids
    doc_starts: np.ndarray  # read-only int64: the index in tokens where each document begins
    header: dict
    reused: bool  # True when found in the cache (nothing was tokenized)

    @property
    def problems(self) -> list[BadRow]:
        return [BadRow(Path(p), line, what) for p, line, what in self.header["problems"]]

    def split(self, val_frac: float) -> tuple[np.ndarray, np.ndarray]:
        """(train, val) tokens: the last ``val_frac`` of the documents (at least one when there
        are two or more) are validation. Deterministic: the same shard splits the same way."""
        if not 0 <= val_frac < 1:
            raise ValueError(f"val_frac must be in [0, 1), got {val_frac}")
        n_docs = len(self.doc_starts)
        n_val = max(1, round(n_docs * val_frac)) if val_frac > 0 and n_docs > 1 else 0
        cut = int(self.doc_starts[n_docs - n_val]) if n_val else len(self.tokens)
        return self.tokens[:cut], self.tokens[cut:]


def rank_slice(n_tokens: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s part of ``n_tokens`` under torchrun: contiguous, the same length on every
    rank (so every rank runs the same number of steps), disjoint; the last
    ``n_tokens % world_size`` tokens belong to no rank."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} of world size {world_size}: need 0 <= rank < world size")
    per = n_tokens // world_size
    if per == 0:
        raise ValueError(f"{n_tokens} tokens cannot be shared among {world_size} ranks")
    return slice(rank * per, (rank + 1) * per)


# -- the key ----------------------------------------------------------------------------------

def tokenizer_identity(tok) -> str:
    """A hash of what decides the ids (pattern, merges, specials): two tokenizers with one name
    but different merges (two runs' own BPEs) must not share a shard."""
    h = hashlib.sha256(tok.enc._pat_str.encode("utf-8"))
    for token, rank in sorted(tok.enc._mergeable_ranks.items(), key=lambda kv: kv[1]):
        h.update(rank.to_bytes(4, "little") + len(token).to_bytes(4, "little") + token)
    h.update(json.dumps(sorted(tok.specials.items())).encode("utf-8"))
    return h.hexdigest()


def _file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError as e:
        raise DataFileError(f"{path}: cannot read ({e.strerror or e})") from None
    return h.digest()


def shard_key(root: Path, files: Iterable[Path], tok) -> str:
    """The cache key: names are taken inside ``root``, so moving the folder keeps the shard."""
    h = hashlib.sha256(f"{FORMAT}:{VERSION}:{tokenizer_identity(tok)}".encode())
    for f in files:
        name = f.relative_to(root).as_posix() if root.is_dir() else f.name
        h.update(name.encode("utf-8", "surrogateescape") + b"\0" + _file_digest(f))
    return h.hexdigest()


# -- building and loading ---------------------------------------------------------------------

def _replace_atomically(dest: Path, write) -> None:
    """write(file) into a temporary file beside ``dest``, then rename it into place."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _tokenize(files: list[Path], problems: Problems, tok, dest: Path) -> list[int]:
    """Write the token file; return where each document starts."""
    dtype, starts = token_dtype(tok.n_vocab), []

    def write(f) -> None:
        n = 0
        for doc in iter_documents(files, problems):
            ids = np.asarray(render_document(tok, doc), dtype=dtype)
            starts.append(n)
            n += len(ids)
            f.write(ids.tobytes())

    _replace_atomically(dest, write)
    return starts


def _paths(cache_dir: Path, key: str) -> tuple[Path, Path, Path]:
    return (cache_dir / f"{key}.tokens", cache_dir / f"{key}.docs", cache_dir / f"{key}.json")


def _load(cache_dir: Path, key: str) -> Shard | None:
    """The cached shard of ``key``, or None when it is missing or not whole."""
    tokens_path, docs_path, header_path = _paths(cache_dir, key)
    try:
        header = json.loads(header_path.read_text(encoding="utf-8"))
        dtype = np.dtype(header["dtype"])
        whole = (header.get("format") == FORMAT and header.get("version") == VERSION
                 and header.get("key") == key
                 and tokens_path.stat().st_size == header["n_tokens"] * dtype.itemsize
                 and docs_path.stat().st_size == header["n_docs"] * 8)
        if not whole or not header["n_tokens"]:
            return None
        tokens = np.memmap(tokens_path, dtype=dtype, mode="r")
        docs = np.memmap(docs_path, dtype="<i8", mode="r")
    except (OSError, ValueError, KeyError, TypeError):  # absent or damaged: build it again
        return None
    return Shard(tokens, docs, header, reused=True)


def _header(key: str, tok, root: Path, files: list[Path], n_tokens: int,
            starts: list[int], problems: Problems) -> dict:
    return {
        "format": FORMAT, "version": VERSION, "key": key,
        "dtype": token_dtype(tok.n_vocab).str, "n_tokens": n_tokens, "n_docs": len(starts),
        "tokenizer": tok.name, "source": str(root), "files": [str(f) for f in files],
        "n_problems": len(problems.rows),
        "problems": [[str(r.path), r.line, r.what] for r in problems.rows[:KEPT_PROBLEMS]],
    }


def _build(root: Path, files: list[Path], tok, cache_dir: Path, key: str,
           on_bad: OnBad) -> Shard:
    tokens_path, docs_path, header_path = _paths(cache_dir, key)
    problems = Problems(on_bad)
    starts = _tokenize(files, problems, tok, tokens_path)
    if not starts:
        tokens_path.unlink(missing_ok=True)
        raise DataFileError(f"{root}: no usable documents ({len(problems.rows)} bad rows; "
                            f"check them with: deepdive data check {root} --kind pretrain)")
    _replace_atomically(docs_path, lambda f: f.write(np.asarray(starts, "<i8").tobytes()))
    n_tokens = tokens_path.stat().st_size // token_dtype(tok.n_vocab).itemsize
    header = _header(key, tok, root, files, n_tokens, starts, problems)
    _replace_atomically(header_path, lambda f: f.write(json.dumps(header).encode("utf-8")))
    shard = _load(cache_dir, key)
    if shard is None:
        raise DataFileError(f"{cache_dir}: the shard just written cannot be read back")
    shard.reused = False
    return shard


def token_shard(path: str | Path, tok, cache_dir: str | Path | None = None,
                on_bad: OnBad = "skip") -> Shard:
    """The token shard of the pretraining data at ``path``: from the cache when its files and
    the tokenizer are unchanged, else tokenized now and cached. With ``on_bad="refuse"`` a
    cached shard that skipped bad rows is refused as a fresh build would be."""
    root = Path(path)
    files = find_files(root, PRETRAIN_SUFFIXES)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if "<|bos|>" not in tok.specials:  # documents are cut by it, as pretraining packs them
        raise ValueError(f"{tok.name} has no <|bos|> token: use a run's own tokenizer")
    key = shard_key(root, files, tok)
    shard = _load(cache, key)
    if shard is None:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            return _build(root, files, tok, cache, key, on_bad)
        except OSError as e:  # a full disk or a read-only cache: the data is fine
            raise DataFileError(f"{cache}: cannot write the shard ({e.strerror or e})") from None
    if on_bad == "refuse" and shard.header["n_problems"]:
        raise DataFileError(str(shard.problems[0]))
    return shard
