"""The tokenizer: a tiktoken.Encoding plus what deepdive knows about it.

One class for every kind: OpenAI's reference encodings (cl100k_base, o200k_base, gpt2 when
tiktoken can fetch it), a run's own BPE trained here (``train_bpe``), a tokenizer.json file,
and a Hugging Face GPT-2 style folder (vocab.json + merges.txt). ``get_encoding`` finds any
of them by name. ``encode`` treats all text as ordinary text: special tokens only ever come
from code that asks for them by name (``special_id``), never from what a user types.
"""

from __future__ import annotations

import base64
import codecs
import json
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import tiktoken

from engine.run import TOKENIZER_FILE
from engine.tokens import bpe, reference
from engine.tokens.chat import REFERENCE_CHAT_SPECIALS, SPECIAL_TOKENS

FORMAT = "deepdive.tokenizer"
VERSION = 1


class UnknownEncodingError(ValueError):
    """No reference encoding, run or file goes by that name."""


def rank_table_problem(ranks: dict[bytes, int], specials: dict[str, int],
                       n_entries: int) -> str | None:
    """Why a BPE rank table cannot be a real one (None if it can). tiktoken trusts its table
    and panics, past any ``except Exception``, on some bad ones; a file must not do that.

    A real table has one rank per token, every single byte (so any text can be encoded), and
    every longer token made by merging two tokens ranked before it; special ids stand apart.
    """
    if len(ranks) != n_entries or len(set(ranks.values())) != len(ranks):
        return "a token or a rank appears twice"
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        return f"{len(missing)} single bytes have no token (e.g. byte {missing[0]})"
    for token, rank in ranks.items():
        if len(token) > 1 and not any(ranks.get(token[:i], rank) < rank
                                      and ranks.get(token[i:], rank) < rank
                                      for i in range(1, len(token))):
            return f"token {token!r} (rank {rank}) is no merge of two earlier tokens"
    clash = set(specials.values()) & set(ranks.values())
    if clash or len(set(specials.values())) != len(specials):
        return "special-token ids collide with each other or with the ranks"
    return None


class TokenizerFileError(ValueError):
    """A tokenizer.json (or HF folder) that cannot be read; the message names the file."""


class Tokenizer:
    """A tiktoken.Encoding with a name and its special tokens."""

    def __init__(self, enc: tiktoken.Encoding, name: str | None = None):
        self.enc = enc
        self.name = name or enc.name
        self.specials: dict[str, int] = dict(enc._special_tokens)
        self.n_vocab: int = enc.n_vocab
        self._special_ids = {i: s for s, i in self.specials.items()}

    def __repr__(self) -> str:
        return f"Tokenizer({self.name!r}, n_vocab={self.n_vocab}, specials={len(self.specials)})"

    # -- encoding ---------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Ordinary text only: "<|bos|>" typed by a user becomes ordinary tokens."""
        return self.enc.encode_ordinary(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.enc.encode_ordinary_batch(texts)

    def decode(self, ids: Iterable[int]) -> str:
        return self.enc.decode(list(ids), errors="replace")

    def token_bytes(self, id: int) -> bytes:
        return self.enc.decode_single_token_bytes(id)

    def token_text(self, id: int) -> str:
        """One token's text; bytes that are not whole UTF-8 become \\xNN escapes."""
        return self.token_bytes(id).decode("utf-8", errors="backslashreplace")

    def special_id(self, name: str) -> int:
        try:
            return self.specials[name]
        except KeyError:
            have = ", ".join(sorted(self.specials)) or "none"
            raise KeyError(f"{self.name} has no special token {name!r} (it has: {have})") from None

    def is_special(self, id: int) -> bool:
        return id in self._special_ids

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        ranks = sorted(self.enc._mergeable_ranks.items(), key=lambda kv: kv[1])
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "pat_str": self.enc._pat_str,
            # base64 of each token's bytes + its rank (= id): exact for any bytes, JSON-safe.
            "ranks": [[base64.b64encode(tok).decode("ascii"), rank] for tok, rank in ranks],
            "special_tokens": self.specials,
        }

    def save(self, path: str | Path) -> None:
        """Write tokenizer.json atomically (tmp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)

    @classmethod
    def from_dict(cls, d: dict, name: str | None = None, source: str = "tokenizer") -> Tokenizer:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise TokenizerFileError(
                f"{source}: not a deepdive tokenizer.json (no format {FORMAT!r})"
            )
        if d.get("version") != VERSION:
            raise TokenizerFileError(f"{source}: version {d.get('version')!r}, expected {VERSION}")
        try:
            ranks = {base64.b64decode(t, validate=True): int(r) for t, r in d["ranks"]}
            specials = {str(s): int(i) for s, i in d["special_tokens"].items()}
            if problem := rank_table_problem(ranks, specials, len(d["ranks"])):
                raise ValueError(problem)
            enc = tiktoken.Encoding(
                name=str(d.get("name", "custom")), pat_str=str(d["pat_str"]),
                mergeable_ranks=ranks, special_tokens=specials,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise TokenizerFileError(
                f"{source}: malformed tokenizer ({type(e).__name__}: {e})"
            ) from e
        return cls(enc, name=name or enc.name)

    @classmethod
    def load(cls, path: str | Path, name: str | None = None) -> Tokenizer:
        path = Path(path)
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except OSError as e:
            raise TokenizerFileError(f"{path}: cannot read ({e.strerror or e})") from e
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TokenizerFileError(f"{path}: not valid JSON ({e})") from e
        return cls.from_dict(d, name=name, source=str(path))


# -- training -------------------------------------------------------------------------------
def train_bpe(
    texts: Iterable[str], vocab_size: int, progress=None, name: str = "deepdive"
) -> Tokenizer:
    """Byte-level BPE on texts: vocab_size counts the 256 bytes, the merges and SPECIAL_TOKENS.

    progress(done, total) is called as merges are learned. With too little text the vocabulary
    can end up smaller than asked (every chunk already one token): check ``n_vocab``.
    """
    n_merges = vocab_size - 256 - len(SPECIAL_TOKENS)
    if n_merges < 0:
        raise ValueError(
            f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)}, got {vocab_size}"
        )
    counts = bpe.count_chunks(texts)
    if not counts:
        raise ValueError("no text to train the tokenizer on")
    merges = bpe.train_merges(counts, n_merges, progress=progress)
    ranks = bpe.merges_to_ranks(merges)
    specials = {s: len(ranks) + i for i, s in enumerate(SPECIAL_TOKENS)}
    enc = tiktoken.Encoding(
        name=name, pat_str=bpe.SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens=specials
    )
    return Tokenizer(enc, name=name)


def with_special_tokens(tok: Tokenizer, names: Sequence[str], first_id: int,
                        name: str | None = None) -> Tokenizer:
    """``tok`` plus those of ``names`` it lacks as special tokens, numbered from ``first_id``.

    ``first_id`` must be past every id tok has (and every row its model has): ordinary ids keep
    their meaning and their model rows. Like every special token, the new ones only come from
    code that asks for them by name; ``encode`` still reads their spellings as ordinary text.
    """
    missing = [n for n in names if n not in tok.specials]
    if first_id < tok.n_vocab:
        raise ValueError(f"new special tokens must start at id {tok.n_vocab} or later, "
                         f"not {first_id}")
    specials = {**tok.specials, **{n: first_id + i for i, n in enumerate(missing)}}
    enc = tiktoken.Encoding(name=name or tok.enc.name, pat_str=tok.enc._pat_str,
                            mergeable_ranks=tok.enc._mergeable_ranks, special_tokens=specials)
    return Tokenizer(enc, name=name or tok.name)


# -- lookup by name -------------------------------------------------------------------------
_CACHE: dict[object, Tokenizer] = {}
_CACHE_LOCK = threading.Lock()


def reference_encodings() -> list[str]:
    """Reference encodings loadable offline now (cl100k_base, o200k_base from package data;
    gpt2/r50k/p50k when tiktoken's cache holds them)."""
    return reference.offline_names()


def _reference(name: str) -> Tokenizer:
    with _CACHE_LOCK:
        if name in _CACHE:
            return _CACHE[name]
    base = reference.load_reference(name)
    extra = REFERENCE_CHAT_SPECIALS.get(name)
    if extra:  # make the chat layout's tokens known so the Tokens pane can show them
        base = tiktoken.Encoding(
            name=base.name, pat_str=base._pat_str, mergeable_ranks=base._mergeable_ranks,
            special_tokens={**base._special_tokens, **extra},
        )
    tok = Tokenizer(base, name=name)
    with _CACHE_LOCK:
        _CACHE[name] = tok
    return tok


def _from_file(path: Path, name: str) -> Tokenizer:
    """A tokenizer.json, cached until the file changes (a run retrained in place)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, name)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    tok = Tokenizer.load(path, name=name)
    with _CACHE_LOCK:
        _CACHE[key] = tok
    return tok


def _unknown(name: str, why: str = "") -> UnknownEncodingError:
    from engine.run import list_runs

    runs = [f"run:{r.name}" for r in list_runs() if r.has_tokenizer]
    available = ", ".join(reference_encodings() + runs) or "none"
    why = f" ({why})" if why else ""
    return UnknownEncodingError(
        f"unknown encoding {name!r}{why}; available offline: {available}. "
        "A path to a tokenizer.json, a run folder or a vocab.json+merges.txt folder also works."
    )


def get_encoding(name: str | Path) -> Tokenizer:
    """A reference encoding, a run (name, "run:<name>" or folder), a tokenizer.json path, or a
    Hugging Face GPT-2 style folder. Unknown -> UnknownEncodingError naming what is available."""
    from engine.run import resolve_run

    name = str(name).strip()
    if not name:
        raise _unknown(name)
    if name in reference.EXPECTED_SHA256 and reference.bundled_files(name):
        return _reference(name)
    run = name[4:] if name.startswith("run:") else name
    path = Path(run).expanduser()
    if path.is_file():
        return _from_file(path, name=_file_name(path))
    if path.is_dir() and not (path / TOKENIZER_FILE).is_file():
        if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
            return tokenizer_from_hf_folder(path)
    run_dir = resolve_run(run) if run else None
    if run_dir is not None and (run_dir / TOKENIZER_FILE).is_file():
        return _from_file(run_dir / TOKENIZER_FILE, name=f"run:{run_dir.name}")
    if name in tiktoken.list_encoding_names():
        try:
            return _reference(name)
        except Exception as e:  # no network / no cache: say so, with what works offline
            raise _unknown(name, f"tiktoken could not load it: {type(e).__name__}") from e
    raise _unknown(name)


def _file_name(path: Path) -> str:
    if path.name == TOKENIZER_FILE and path.parent.name:
        return f"run:{path.parent.name}"
    return f"file:{path.name}"


# -- Hugging Face GPT-2 style folders ------------------------------------------------------
def _gpt2_byte_decoder() -> dict[str, int]:
    """GPT-2's bytes_to_unicode, inverted: the printable stand-in char -> the byte."""
    printable = [
        *range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)
    ]
    decoder = {chr(b): b for b in printable}
    others = [b for b in range(256) if b not in decoder.values()]
    decoder.update({chr(256 + n): b for n, b in enumerate(others)})
    return decoder


def tokenizer_from_hf_folder(path: str | Path) -> Tokenizer:
    """vocab.json + merges.txt (GPT-2 byte-level BPE) -> Tokenizer, checked to encode exactly
    as the merges say: tiktoken merges by the rank (= id) of the merged bytes, so merged ids
    must grow in merge order."""
    path = Path(path)
    decoder = _gpt2_byte_decoder()
    try:
        vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
        lines = (path / "merges.txt").read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as e:
        raise TokenizerFileError(f"{path}: cannot read vocab.json/merges.txt ({e})") from e
    ranks: dict[bytes, int] = {}
    spelled: dict[bytes, str] = {}  # token bytes -> its vocab.json text
    specials: dict[str, int] = {}
    for text, i in vocab.items():
        if text and all(ch in decoder for ch in text):
            data = bytes(decoder[ch] for ch in text)
            ranks[data], spelled[data] = int(i), text
        else:
            specials[text] = int(i)
    added = path / "added_tokens.json"
    if added.is_file():
        specials.update({str(s): int(i) for s, i in json.loads(added.read_text("utf-8")).items()})
    if len(set(ranks.values())) != len(ranks) or any(bytes([b]) not in ranks for b in range(256)):
        raise TokenizerFileError(f"{path}: vocab.json is not a byte-level BPE vocabulary")
    last = -1
    merged: set[bytes] = set()
    used: set[bytes] = set()  # tokens merges.txt builds on
    for line in lines:
        if not line.strip() or line.startswith("#version"):
            continue
        parts = line.split(" ")
        try:
            a, b = (bytes(decoder[ch] for ch in p) for p in parts)
            rank = ranks[a + b]
        except (KeyError, ValueError) as e:
            raise TokenizerFileError(
                f"{path}: merges.txt line {line!r} does not fit vocab.json"
            ) from e
        if rank <= last or rank <= max(ranks[a], ranks[b]):
            raise TokenizerFileError(f"{path}: merge {line!r} is out of rank order")
        last = rank
        merged.add(a + b)
        used.update((a, b))
    # A multi-byte entry no merge makes (GPT-2's "<|endoftext|>", whose characters all happen
    # to be byte stand-ins) is a special token: BPE can never produce it from text, and as a
    # mergeable rank tiktoken would wrongly merge ordinary text into it.
    for data in [t for t in ranks if len(t) > 1 and t not in merged]:
        if data in used:
            raise TokenizerFileError(
                f"{path}: merges.txt builds on {spelled[data]!r}, which no merge makes"
            )
        specials.setdefault(spelled[data], ranks.pop(data))
    from tiktoken_ext.openai_public import r50k_pat_str

    enc = tiktoken.Encoding(
        name=f"hf:{path.name}", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens=specials
    )
    return Tokenizer(enc)


# -- display helpers (Tokens pane, CLI) ------------------------------------------------------
@dataclass
class Piece:
    """Consecutive tokens shown as one chip: one token, or several whose bytes only together
    make whole UTF-8 characters (Korean, emoji)."""

    ids: list[int]
    text: str  # decoded text; bytes still not whole UTF-8 are \xNN escapes
    nbytes: int
    special: bool = False
    partial: bool = False  # text holds \xNN escapes (the bytes never completed a character)

    @property
    def grouped(self) -> bool:  # several tokens, each only part of a character
        return len(self.ids) > 1


def _utf8_state(data: bytes) -> str:
    """"ok" (whole characters), "incomplete" (ends mid-character) or "invalid"."""
    try:
        data.decode("utf-8")
        return "ok"
    except UnicodeDecodeError:
        pass
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
        return "incomplete"
    except UnicodeDecodeError:
        return "invalid"


def token_pieces(tok: Tokenizer, ids: Sequence[int]) -> list[Piece]:
    """Group ids into display pieces: tokens that are only part of a character join the
    following tokens until the bytes decode; specials stand alone; bytes that never complete
    a character stay a piece of \\xNN escapes (never mojibake, never an exception)."""
    pieces: list[Piece] = []
    group: list[int] = []
    buf = b""

    def flush_escaped() -> None:
        nonlocal group, buf
        if group:
            text = buf.decode("utf-8", errors="backslashreplace")
            pieces.append(Piece(group, text, len(buf), partial=True))
        group, buf = [], b""

    for i in ids:
        if tok.is_special(i):
            flush_escaped()
            pieces.append(Piece([i], tok.token_bytes(i).decode("utf-8"), 0, special=True))
            continue
        data = tok.token_bytes(i)
        state = _utf8_state(buf + data)
        if state == "invalid" and group:  # the held bytes never finished: show them as bytes
            flush_escaped()
            state = _utf8_state(data)
        group, buf = [*group, i], buf + data
        if state == "ok":
            pieces.append(Piece(group, buf.decode("utf-8"), len(buf)))
            group, buf = [], b""
        elif state == "invalid":
            flush_escaped()
    flush_escaped()
    return pieces
