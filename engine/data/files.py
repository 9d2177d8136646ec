"""Reading a user's data files line by line, with every problem named as ``path:line: what``.

The three readers (engine/data/readers.py) share what is here: finding the files under a path
(folders are walked recursively, in sorted order, hidden files skipped), decoding each line as
UTF-8, parsing JSON lines, and the one policy for bad data: ``on_bad="skip"`` drops the row and
keeps the problem in a list, ``on_bad="refuse"`` raises ``DataFileError`` at the first one.
Bad data never ends in a traceback: every error a file can cause is turned into a message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

OnBad = Literal["skip", "refuse"]
ON_BAD: tuple[OnBad, ...] = ("skip", "refuse")


class DataFileError(ValueError):
    """A data file that cannot be used (refused, missing, unreadable); the message names it."""


@dataclass(frozen=True)
class BadRow:
    path: Path
    line: int  # 1-based; a parquet file's row number
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


class Problems:
    """The bad rows met so far, under one ``on_bad`` policy."""

    def __init__(self, on_bad: OnBad = "skip"):
        if on_bad not in ON_BAD:
            raise ValueError(f"on_bad must be one of {', '.join(ON_BAD)}, got {on_bad!r}")
        self.on_bad = on_bad
        self.rows: list[BadRow] = []

    def add(self, path: Path, line: int, what: str) -> None:
        row = BadRow(path, line, what)
        if self.on_bad == "refuse":
            raise DataFileError(str(row))
        self.rows.append(row)

    def rows_of(self, path: Path) -> list[BadRow]:
        return [row for row in self.rows if row.path == path]


def find_files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """``path`` itself, or the files under a folder whose suffix is one of ``suffixes``.

    Sorted by their path inside the folder, so the order (and a shard's hash) does not depend
    on the filesystem; hidden files and folders (a cache, .git) are left out."""
    path = Path(path)
    kinds = ", ".join(suffixes)
    if path.is_file():
        if path.suffix.lower() not in suffixes:
            raise DataFileError(f"{path}: unknown file type {path.suffix or '(none)'!r} "
                                f"(this kind of data reads {kinds})")
        return [path]
    if not path.is_dir():
        raise DataFileError(f"{path}: no such file or folder")
    found = sorted((p for p in path.rglob("*") if p.is_file() and _wanted(p, path, suffixes)),
                   key=lambda p: p.relative_to(path).as_posix())
    if not found:
        raise DataFileError(f"{path}: the folder holds no {kinds} files")
    return found


def _wanted(p: Path, root: Path, suffixes: tuple[str, ...]) -> bool:
    hidden = any(part.startswith(".") for part in p.relative_to(root).parts)
    return not hidden and p.suffix.lower() in suffixes


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:  # permissions, a folder raced away: about the file, not a row
        raise DataFileError(f"{path}: cannot read ({e.strerror or e})") from None


def text_lines(path: Path, problems: Problems) -> Iterator[tuple[int, str | None]]:
    """(line number, text) for each line, its newline removed; text is None where the line is
    not UTF-8 (the problem is recorded). An empty file is a problem of line 1."""
    data = read_bytes(path)
    if not data.strip():
        problems.add(path, 1, "empty file")
        return
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark is not text
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            yield number, raw.decode("utf-8").removesuffix("\r")
        except UnicodeDecodeError as e:
            problems.add(path, number, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at "
                                       f"column {e.start + 1})")
            yield number, None


def json_rows(path: Path, problems: Problems) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each JSON-object line; blank lines are allowed and skipped."""
    for number, line in text_lines(path, problems):
        if line is None or not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            problems.add(path, number, f"not valid JSON ({e.msg} at column {e.colno})")
            continue
        except RecursionError:  # [[[[...]]]] thousands deep
            problems.add(path, number, "not valid JSON (nested too deeply)")
            continue
        except ValueError as e:  # an integer of thousands of digits: Python's own limit
            problems.add(path, number, f"not usable JSON ({e})")
            continue
        if not isinstance(row, dict):
            problems.add(path, number, f"expected a JSON object, got {type_name(row)}")
            continue
        yield number, row


def type_name(value: object) -> str:
    """A JSON value's type as JSON calls it, for messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def text_field(row: dict, name: str, where: str = "") -> tuple[str | None, str]:
    """(the text of ``row[name]``, "") or (None, what is wrong with it)."""
    where = f"{where} " if where else ""
    if name not in row:
        return None, f"{where}has no {name!r} field"
    value = row[name]
    if not isinstance(value, str):
        return None, f"{where}{name!r} must be a string, got {type_name(value)}"
    if not value.strip():
        return None, f"{where}{name!r} is empty"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a JSON escape like \ud800: no text can be made of it
        return None, f"{where}{name!r} contains an unpaired surrogate (\\ud800-\\udfff)"
    return value, ""
