"""Starting and stopping a trainer from the app: ``deepdive train …`` as a child process.

The child gets its own session (``start_new_session``) and writes stdout/stderr to
``<run>/train.log``, so a crash in training never reaches the terminal the app draws on, and
the app only follows ``events.jsonl``. Stopping sends SIGINT (the trainer saves a checkpoint,
then exits), and SIGTERM if asked again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from engine.run import LOCK_FILE, is_run_active

LOG_FILE = "train.log"


def deepdive_command() -> list[str]:
    """How to run the ``deepdive`` CLI: the script beside this Python, on PATH, or via -c."""
    beside = Path(sys.executable).parent / "deepdive"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("deepdive")
    if found:
        return [found]
    return [sys.executable, "-m", "deepdive"]


def spawn_trainer(run_dir: Path, args: list[str]) -> subprocess.Popen:
    """Start ``deepdive train ARGS`` for ``run_dir`` (created here so the log has a home)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DEEPDIVE_CHECKPOINTS=str(run_dir.parent))
    with open(run_dir / LOG_FILE, "ab") as log:
        return subprocess.Popen(
            [*deepdive_command(), "train", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def trainer_pid(run_dir: Path) -> int | None:
    """The pid of the trainer holding the run's lock (None when no trainer holds it)."""
    if not is_run_active(run_dir):
        return None
    try:
        return int((run_dir / LOCK_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def ask_to_stop(pid: int, hard: bool = False) -> None:
    """SIGINT: the trainer saves and exits; ``hard``: SIGTERM for one that does not listen."""
    os.kill(pid, signal.SIGTERM if hard else signal.SIGINT)


def rss_bytes(pid: int | str = "self") -> int | None:
    """Resident memory of a process from /proc (None where unknown, e.g. not Linux)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def log_tail(run_dir: Path, n: int = 1) -> str:
    """The last ``n`` non-empty lines of the run's train.log ("" if none)."""
    try:
        with open(run_dir / LOG_FILE, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return "\n".join(lines[-n:])
