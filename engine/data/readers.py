"""A user's data for each stage, read from files (engine/data/files.py does the line work).

- **pretraining** documents: ``.txt`` (the file is one document; a line holding only ``---``
  separates documents inside it), ``.jsonl`` (one document per line, in a ``text`` field) and
  ``.parquet`` (a ``text`` column; needs the optional extra ``pip install -e '.[parquet]'``).
- **SFT** conversations: ``.jsonl``, each row ``{"messages": [{"role", "content"}, ...]}``:
  an optional leading ``system`` message, then ``user`` and ``assistant`` turns alternating,
  starting with ``user`` and ending with ``assistant`` (the turn SFT trains on).
- **RL** problems: ``.jsonl`` in GSM8K's layout, ``{"question", "answer"}`` where the answer
  ends with ``#### <number>`` (commas allowed: ``#### 1,234``). Each becomes a Problem whose
  answer is that number, judged like every other sum (``judge.verify``).

A path may be a file or a folder (all its files of the kind's types, recursively, sorted).
Texts stay text: they are later encoded with ``Tokenizer.encode``, which never makes special
tokens, so a row that spells ``<|bos|>`` trains on those characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from engine.data.files import (
    DataFileError,
    OnBad,
    Problems,
    find_files,
    json_rows,
    text_field,
    text_lines,
    type_name,
)
from engine.data.tasks import Problem, number_problem

T = TypeVar("T")
DOC_SEPARATOR = "---"
PRETRAIN_SUFFIXES = (".txt", ".jsonl", ".parquet")
JSONL = (".jsonl",)
PARQUET_HINT = "pip install -e '.[parquet]' (or pip install pyarrow)"


@dataclass
class Loaded(Generic[T]):
    """What a reader got from a path: the good items, the bad rows it skipped, the files."""

    items: list[T]
    problems: Problems
    files: list[Path] = field(default_factory=list)


# -- pretraining documents ----------------------------------------------------------------------

def _txt_documents(path: Path, problems: Problems) -> Iterator[str]:
    """The documents of a .txt file; one with a line that is not UTF-8 is dropped whole (a
    document with a hole in it is not the document)."""
    lines: list[str] = []
    broken, found = False, False
    for _, line in text_lines(path, problems):
        if line is not None and line.strip() == DOC_SEPARATOR:
            if lines and not broken and "".join(lines).strip():
                found = True
                yield "\n".join(lines)
            lines, broken = [], False
        elif line is None:
            broken = True
        else:
            lines.append(line)
    if lines and not broken and "".join(lines).strip():
        found = True
        yield "\n".join(lines)
    elif not found and not problems.rows_of(path):
        problems.add(path, 1, f"no text (only {DOC_SEPARATOR!r} separators)")


def _jsonl_documents(path: Path, problems: Problems) -> Iterator[str]:
    for number, row in json_rows(path, problems):
        text, wrong = text_field(row, "text")
        if text is None:
            problems.add(path, number, wrong)
        else:
            yield text


def _parquet_documents(path: Path, problems: Problems) -> Iterator[str]:
    """The ``text`` column, row by row; line numbers in messages are row numbers (1-based)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:  # the optional extra: say how to get it, whatever on_bad says
        raise DataFileError(f"{path}: reading .parquet needs pyarrow: {PARQUET_HINT}") from None
    try:
        batches = pq.ParquetFile(path).iter_batches(columns=["text"])
        values = [v for batch in batches for v in batch.column(0).to_pylist()]
    except Exception as e:  # noqa: BLE001 - pyarrow raises many kinds; a file is never a crash
        raise DataFileError(f"{path}: not a parquet file with a 'text' column "
                            f"({type(e).__name__}: {e})") from None
    for number, value in enumerate(values, start=1):
        if isinstance(value, str) and value.strip():
            yield value
        else:
            what = "is empty" if isinstance(value, str) else f"must be a string, got {value!r}"
            problems.add(path, number, f"'text' {what}")


_DOCUMENTS: dict[str, Callable[[Path, Problems], Iterator[str]]] = {
    ".txt": _txt_documents, ".jsonl": _jsonl_documents, ".parquet": _parquet_documents,
}


def iter_documents(files: list[Path], problems: Problems) -> Iterator[str]:
    """Documents one at a time (a corpus need not fit in memory twice: the shard builder)."""
    for path in files:
        yield from _DOCUMENTS[path.suffix.lower()](path, problems)


def read_documents(path: str | Path, on_bad: OnBad = "skip") -> Loaded[str]:
    problems = Problems(on_bad)
    files = find_files(Path(path), PRETRAIN_SUFFIXES)
    return Loaded(list(iter_documents(files, problems)), problems, files)


# -- SFT conversations --------------------------------------------------------------------------

def _message_problem(i: int, message: object) -> str:
    """What is wrong with message number ``i`` on its own ("" if nothing)."""
    if not isinstance(message, dict):
        return f"message {i} must be an object with role and content, got {type_name(message)}"
    role = message.get("role")
    if role not in ("system", "user", "assistant"):
        return f"message {i} has role {role!r}; roles are user, assistant (and a first system)"
    return text_field(message, "content", f"message {i}")[1]


def conversation_problem(messages: object) -> str:
    """What is wrong with a ``messages`` list ("" if nothing): see the module's rules."""
    if not isinstance(messages, list):
        return f"'messages' must be a list, got {type_name(messages)}"
    if not messages:
        return "'messages' is empty"
    for i, message in enumerate(messages, start=1):
        if wrong := _message_problem(i, message):
            return wrong
    skip = 1 if messages[0]["role"] == "system" else 0  # one leading system prompt is allowed
    for i, message in enumerate(messages[skip:]):
        expected = ("user", "assistant")[i % 2]
        if message["role"] != expected:
            return (f"message {i + skip + 1} is {message['role']}, expected {expected} "
                    "(turns alternate user, assistant, starting with user)")
    if messages[-1]["role"] != "assistant":
        return "the conversation must end with an assistant message (the turn SFT learns)"
    return ""


def _conversations(path: Path, problems: Problems) -> Iterator[list[dict]]:
    for number, row in json_rows(path, problems):
        if "messages" not in row:
            problems.add(path, number, "has no 'messages' field")
        elif wrong := conversation_problem(row["messages"]):
            problems.add(path, number, wrong)
        else:  # only role and content travel on: other keys are the file's business
            yield [{"role": m["role"], "content": m["content"]} for m in row["messages"]]


def read_conversations(path: str | Path, on_bad: OnBad = "skip") -> Loaded[list[dict]]:
    problems = Problems(on_bad)
    files = find_files(Path(path), JSONL)
    return Loaded([c for f in files for c in _conversations(f, problems)], problems, files)


# -- RL problems --------------------------------------------------------------------------------

FINAL_MARK = "####"
NUMBER_RE = re.compile(r"-?\d+(?:,\d+)*(?:\.\d+)?")


def final_answer(answer: str) -> tuple[str | None, str]:
    """(the number after the last ``####``, commas removed, "") or (None, what is wrong)."""
    if FINAL_MARK not in answer:
        return None, f"'answer' has no final answer after {FINAL_MARK!r} (GSM8K: '... #### 42')"
    final = answer.rsplit(FINAL_MARK, 1)[1].strip()
    if not NUMBER_RE.fullmatch(final):
        return None, f"the final answer after {FINAL_MARK!r} is not a number: {final[:40]!r}"
    return final.replace(",", ""), ""


def _problems(path: Path, problems: Problems) -> Iterator[Problem]:
    for number, row in json_rows(path, problems):
        question, wrong = text_field(row, "question")
        answer, wrong = (text_field(row, "answer") if question is not None else (None, wrong))
        number_text, wrong = final_answer(answer) if answer is not None else (None, wrong)
        if number_text is None:
            problems.add(path, number, wrong)
        else:
            yield number_problem(question, number_text)


def read_problems(path: str | Path, on_bad: OnBad = "skip") -> Loaded[Problem]:
    problems = Problems(on_bad)
    files = find_files(Path(path), JSONL)
    return Loaded([p for f in files for p in _problems(f, problems)], problems, files)


READERS: dict[str, Callable[..., Loaded]] = {
    "pretrain": read_documents, "sft": read_conversations, "rl": read_problems,
}
