"""Checks typer runs on option values while it parses, shared by the command modules.

Standard library and typer only: ``deepdive --help`` must stay fast.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import typer

Value = str | Path | list[Path] | None  # one option's value (--data repeats)


def path_like(value: Value) -> Value:
    """A run name, encoding name or path a filesystem can hold; else a usage error (exit 2).

    Python before 3.13 makes ``Path.is_dir()`` raise OSError for a name too long for the
    filesystem (ENAMETOOLONG) instead of answering False, so a paragraph pasted as ``--run``
    ended in a traceback wherever a command looked for the run. Refused here, it is one line
    naming the option; every other name goes on to the command's own checks ("no such run").
    """
    for item in value if isinstance(value, list) else [value]:
        if item is not None:
            _check(str(item))
    return value


def _check(name: str) -> None:
    try:
        os.stat(name)
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise typer.BadParameter(
                f"too long to be a name or path ({len(name)} characters): {name[:40]!r}…"
            ) from None
    except ValueError:  # an embedded NUL: Path checks answer False, the command says so
        pass
