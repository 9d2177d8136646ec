"""Starting and stopping a trainer from the app: ``deepdive train …`` as a child process.

The Train pane only draws and asks; ``Trainers`` holds the child it started, which trainer a
stop goes to, and whether a run can be resumed (how long a new run takes:
engine/train/estimate.py).

The child gets its own session (``start_new_session``) and writes stdout/stderr to
``<run>/train.log``, so a crash in training never reaches the terminal the app draws on, and
the app only follows ``events.jsonl``. Stopping sends SIGINT (the trainer saves a checkpoint,
then exits), and SIGTERM if asked again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from engine.api import LOCK_FILE, TRAIN_LOG_FILE, RunState, deepdive_command, is_run_active


def spawn_trainer(run_dir: Path, args: list[str]) -> subprocess.Popen:
    """Start ``deepdive train ARGS`` for ``run_dir`` (created here so the log has a home)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DEEPDIVE_CHECKPOINTS=str(run_dir.parent))
    with open(run_dir / TRAIN_LOG_FILE, "ab") as log:
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
        with open(run_dir / TRAIN_LOG_FILE, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def new_run_name(root: Path, preset: str, seed: int) -> str:
    """A fresh folder name under ``root``: ``<preset>-s<seed>-<HHMMSS>``."""
    name = f"{preset}-s{seed}-{time.strftime('%H%M%S')}"
    while (root / name).exists():
        name += "x"
    return name


class Trainers:
    """The trainer the app started (at most one at a time) and the stops it asked for.

    No drawing: the Train pane asks here and shows the answers."""

    def __init__(self) -> None:
        self.child: subprocess.Popen | None = None
        self.child_dir: Path | None = None
        self.stop_requests = 0  # stops asked of the followed run (a second one forces)

    def child_alive(self, run_dir: Path | None = None) -> bool:
        """The child started here still runs (for ``run_dir``, when given)."""
        if self.child is None or self.child.poll() is not None:
            return False
        return run_dir is None or self.child_dir == run_dir

    def reap(self) -> str | None:
        """Forget a child that ended; a message when it failed (None otherwise)."""
        if self.child is None or self.child.poll() is None:
            return None
        code, run_dir = self.child.returncode, self.child_dir
        self.child = None
        if code in (0, None) or run_dir is None:
            return None
        tail = log_tail(run_dir) or "no output"
        return f"trainer exited with code {code}: {tail}\n(log: {run_dir}/{TRAIN_LOG_FILE})"

    def start(self, run_dir: Path, args: list[str]) -> None:
        """``deepdive train ARGS`` for ``run_dir`` as the child (OSError when it cannot)."""
        self.child = spawn_trainer(run_dir, args)
        self.child_dir = run_dir

    def start_new(self, root: Path, preset: str, seed: int) -> Path:
        """A new run of ``preset`` under ``root``; its folder."""
        name = new_run_name(root, preset, seed)
        run_dir = root / name
        self.start(run_dir, ["--preset", preset, "--run", name, "--seed", str(seed)])
        return run_dir

    def resume_problem(self, run_dir: Path, state: RunState | None) -> str | None:
        """Why ``run_dir`` cannot be resumed now (None: it can)."""
        if is_run_active(run_dir) or self.child_alive(run_dir):
            return f"{run_dir.name} is already training"
        if state is not None and state.end_status == "done":
            return f"{run_dir.name} already finished"
        return None

    def resume(self, run_dir: Path) -> Path:
        """Continue ``run_dir`` where it stopped; its folder."""
        self.start(run_dir, ["--run", run_dir.name, "--resume"])
        return run_dir

    def stop_target(self, run_dir: Path) -> tuple[int | None, bool, bool]:
        """(pid, mine, hard) of the trainer a stop for ``run_dir`` goes to: ``mine`` when it is
        the child started here, ``hard`` when a stop was asked already (pid None: none runs)."""
        mine = self.child_alive(run_dir)
        pid = self.child.pid if mine and self.child else trainer_pid(run_dir)
        return pid, mine, self.stop_requests >= 1

    def stop(self, pid: int, hard: bool) -> None:
        """Signal ``pid`` (OSError when it cannot be signalled) and count the request."""
        ask_to_stop(pid, hard=hard)
        self.stop_requests += 1
