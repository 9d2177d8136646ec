"""Run folders: where they live, what is in them, and the lock that keeps one trainer per run.

```
checkpoints/<run>/
  run.json  tokenizer.json  events.jsonl  report.json
  base/ sft/ rl/   model.safetensors + meta.json
                   (+ optimizer.safetensors while a stage is unfinished)
```
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

STAGES = ("base", "sft", "rl")  # checkpoint folders; the training stage "pretrain" writes "base"
LOCK_FILE = "train.lock"


def checkpoints_root() -> Path:
    """``$DEEPDIVE_CHECKPOINTS`` if set, else ``./checkpoints`` when it exists, else the repo's."""
    env = os.environ.get("DEEPDIVE_CHECKPOINTS")
    if env:
        return Path(env)
    here = Path.cwd() / "checkpoints"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "checkpoints"


def resolve_run(run: str | Path) -> Path:
    """A run given by name (under the checkpoints root) or by path."""
    p = Path(run)
    if p.is_absolute() or len(p.parts) > 1:
        return p
    named = checkpoints_root() / p
    # a bare name means a run under the checkpoints root, even if a folder of that name sits in cwd
    return named if named.is_dir() or not p.is_dir() else p


@dataclass
class RunInfo:
    name: str
    path: Path
    stages: list[str]  # which of base/sft/rl have a model
    has_tokenizer: bool
    active: bool  # a trainer holds the lock now


def list_runs(root: str | Path | None = None) -> list[RunInfo]:
    root = Path(root) if root else checkpoints_root()
    if not root.is_dir():
        return []
    runs = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        stages = [s for s in STAGES if (d / s / "model.safetensors").is_file()]
        has_tok = (d / "tokenizer.json").is_file()
        if stages or has_tok or (d / "events.jsonl").is_file():
            runs.append(RunInfo(d.name, d, stages, has_tok, is_run_active(d)))
    return runs


def read_json(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class RunLockedError(RuntimeError):
    pass


class RunLock:
    """An advisory ``flock`` on ``<run>/train.lock``; the OS drops it when the trainer dies,
    so a crashed trainer never leaves a stale lock behind."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(
                f"another trainer is already writing {self.path.parent} "
                f"(pid {_lock_pid(self.path)}); stop it or choose another --run"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _lock_pid(path: Path) -> str:
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"


def is_run_active(run_dir: str | Path) -> bool:
    """True while some process holds the run's training lock."""
    path = Path(run_dir) / LOCK_FILE
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
