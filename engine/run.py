"""The run folder, the one contract between the trainer, the evaluator, the CLI and the app.

Everything that writes or reads a run folder takes its names from here: the file names, the
training stages in pipeline order (what each writes, what it starts from), and ``RunFolder``,
a run's path with a property per file. checkpoints/README.md shows the same layout to people,
and tests/test_run_contract.py keeps the two in step.

```
checkpoints/<run>/
  run.json  tokenizer.json  events.jsonl  report.json  (report-dev.json)  (train.lock)
  base/ sft/ rl/ sft_control/ reward/ rlhf/ rlhf_over/   model.safetensors + meta.json
                                (+ optimizer.safetensors while a stage is unfinished)
```

Nothing heavy is imported here (no torch, nothing else from engine/): the app and the CLI read
run folders long before they load a model.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

# -- the files ----------------------------------------------------------------------------------

RUN_FILE = "run.json"  # how the run was made: preset (every number), seed, data, versions
TOKENIZER_FILE = "tokenizer.json"  # the run's BPE
EVENTS_FILE = "events.jsonl"  # the trainer's event log, append-only
REPORT_FILE = "report.json"  # the report card (test split)
DEV_REPORT_FILE = "report-dev.json"  # an evaluation on the dev split, for tuning presets
LOCK_FILE = "train.lock"  # flock'ed while a trainer writes the run
TRAIN_LOG_FILE = "train.log"  # stdout/stderr of a trainer the app started
MODEL_FILE = "model.safetensors"  # in each stage folder: the weights
META_FILE = "meta.json"  # in each stage folder: config, step, metrics, sha256 of the files
OPTIMIZER_FILE = "optimizer.safetensors"  # in a stage folder while the stage is unfinished

RUN_FILES = (RUN_FILE, TOKENIZER_FILE, EVENTS_FILE, REPORT_FILE, DEV_REPORT_FILE, LOCK_FILE,
             TRAIN_LOG_FILE)
STAGE_FILES = (MODEL_FILE, META_FILE, OPTIMIZER_FILE)


def report_file(split: str = "test") -> str:
    """report.json is the test split's card; an evaluation on another split goes beside it."""
    return {"test": REPORT_FILE, "dev": DEV_REPORT_FILE}.get(split) or f"report-{split}.json"


# -- the stages ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    """One stage of the training pipeline and what it leaves in the run folder."""

    name: str  # as in --stages and in events.jsonl
    folder: str | None = None  # the checkpoint folder it writes (None: no model)
    parent: str | None = None  # the stage whose weights it starts from (None: from scratch)
    file: str | None = None  # the file it writes at the top of the run folder


TOKENIZER = Stage("tokenizer", file=TOKENIZER_FILE)
PRETRAIN = Stage("pretrain", folder="base")
SFT = Stage("sft", folder="sft", parent="pretrain")
RL = Stage("rl", folder="rl", parent="sft")
CONTROL = Stage("control", folder="sft_control", parent="sft")  # SFT on the compute RL used
# A Bradley–Terry reward model learnt from rater preferences between SFT replies
REWARD = Stage("reward", folder="reward", parent="sft")
# RL against that reward model; its folder holds the over-optimised end, and RLHF_PEAK the
# weights at the gold peak chosen on dev (what "a little bit of fine-tuning" keeps)
RLHF = Stage("rlhf", folder="rlhf_over", parent="sft")
RLHF_PEAK = "rlhf"
EVAL = Stage("eval", file=REPORT_FILE)

PIPELINE = (TOKENIZER, PRETRAIN, SFT, RL, CONTROL, REWARD, RLHF, EVAL)  # a run's order
STAGE_NAMES = tuple(s.name for s in PIPELINE)
_BY_NAME = {s.name: s for s in PIPELINE}
# every folder a stage writes: base, sft, rl, sft_control, reward, rlhf_over, rlhf
STAGE_FOLDERS = tuple(s.folder for s in PIPELINE if s.folder) + (RLHF_PEAK,)
# the chat models every full run has and the app shows (Compare's three columns, the demo)
MODEL_FOLDERS = (PRETRAIN.folder, SFT.folder, RL.folder)
# RLHF's two chat models, which Compare also offers where a run has them
RLHF_FOLDERS = (RLHF_PEAK, RLHF.folder)
# The report card's stage columns and the folder each one's model is read from.
REPORT_STAGES = {"base": PRETRAIN.folder, "sft": SFT.folder, "rl": RL.folder,
                 "control": CONTROL.folder}
# The report card's columns in the order shown: the stages, with the labelers (the people who
# wrote the SFT answers) beside the models; a metric's suffix is the column's folder name.
REPORT_COLUMNS = ("base", "sft", "rl", "labelers", "control")


def stage_named(name: str) -> Stage:
    """The pipeline stage called ``name``; KeyError names the stages there are."""
    if name not in _BY_NAME:
        raise KeyError(f"no stage {name!r} (stages: {', '.join(STAGE_NAMES)})")
    return _BY_NAME[name]


# -- one run folder -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RunFolder:
    """A run folder's path, with the path of each thing in it by its contract name."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of(cls, run: str | Path) -> RunFolder:
        """A run given by name (under the checkpoints root) or by path."""
        return cls(resolve_run(run))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def run_json(self) -> Path:
        return self.path / RUN_FILE

    @property
    def tokenizer(self) -> Path:
        return self.path / TOKENIZER_FILE

    @property
    def events(self) -> Path:
        return self.path / EVENTS_FILE

    @property
    def lock(self) -> Path:
        return self.path / LOCK_FILE

    def report(self, split: str = "test") -> Path:
        return self.path / report_file(split)

    def model_dir(self, stage_or_folder: str) -> Path:
        """A checkpoint folder, by training stage ("pretrain", "control") or by folder name
        ("base", "sft_control", or any other folder a run holds)."""
        if stage_or_folder in STAGE_FOLDERS:  # "rlhf" is a folder (the peak) and a stage
            return self.path / stage_or_folder
        named = _BY_NAME.get(stage_or_folder)
        if named is not None and named.folder is None:
            raise ValueError(f"the {named.name} stage writes no model")
        return self.path / (named.folder if named else stage_or_folder)

    def has_model(self, stage_or_folder: str) -> bool:
        return (self.model_dir(stage_or_folder) / MODEL_FILE).is_file()

    def models(self) -> list[str]:
        """The model folders the app shows (base, sft, rl) that hold weights, in order (RLHF's,
        in RLHF_FOLDERS, Compare offers apart)."""
        return [f for f in MODEL_FOLDERS if self.has_model(f)]

    def read_info(self) -> dict:
        """run.json, or {} where the run has none (a bare folder, an old run). RunFileError
        (naming the file) when it is no JSON object or a field has the wrong type."""
        if not self.run_json.is_file():
            return {}
        info = read_json(self.run_json)
        for key, kind in (("preset", str), ("seed", int), ("preset_config", dict),
                          ("data", dict)):
            if key in info and (not isinstance(info[key], kind) or isinstance(info[key], bool)):
                raise RunFileError(f"{self.run_json}: {key!r} must be {kind.__name__}, "
                                   f"not {info[key]!r}")
        return info

    def copy_to(self, dest: str | Path, names: tuple[str, ...]) -> RunFolder:
        """A new run folder at ``dest`` holding copies of this run's ``names`` (files or stage
        folders, e.g. tokenizer.json, base, sft): a fork to retrain later stages in, the
        original untouched. run.json is the caller's to write (with the settings to try)."""
        missing = [name for name in names if not (self.path / name).exists()]
        if missing:  # before the fork exists: no half-made folder to trip a retry
            raise FileNotFoundError(f"{self.path} has no {', '.join(missing)} to copy")
        fork = RunFolder(Path(dest))
        fork.path.mkdir(parents=True)
        for name in names:
            src = self.path / name
            (shutil.copytree if src.is_dir() else shutil.copy)(src, fork.path / name)
        return fork

    def write_info(self, info: dict) -> None:
        """Write run.json atomically: a reader sees the old file or the new one, never half."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f"{RUN_FILE}.tmp"
        tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.run_json)


# -- finding runs -------------------------------------------------------------------------------

def world_seed(info: dict, default: int = 0) -> int:
    """The seed of the world a run was made with, from its run.json ``info``: ``data.world_seed``
    where recorded (later stages may be rerun under other seeds on one world), else the run's
    seed, else ``default``."""
    return int((info.get("data") or {}).get("world_seed", info.get("seed", default)))


def checkpoints_root() -> Path:
    """``$DEEPDIVE_CHECKPOINTS`` if set, else ``./checkpoints`` when it exists, else the repo's."""
    env = os.environ.get("DEEPDIVE_CHECKPOINTS")
    if env:
        return Path(env)
    here = Path.cwd() / "checkpoints"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "checkpoints"


def cache_root() -> Path:
    """Where downloads and token shards go: ``$DEEPDIVE_CACHE``, else ``~/.cache/deepdive``."""
    return Path(os.environ.get("DEEPDIVE_CACHE") or Path.home() / ".cache" / "deepdive")


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
        run = RunFolder(d)
        stages = run.models()
        has_tok = run.tokenizer.is_file()
        if stages or has_tok or run.events.is_file():
            runs.append(RunInfo(d.name, d, stages, has_tok, is_run_active(d)))
    return runs


class RunFileError(ValueError):
    """A run file (run.json, a meta.json, report.json) that is not the JSON object it must be."""


def read_json(path: str | Path) -> dict:
    """A JSON object from ``path``; RunFileError naming the file when it is anything else."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFileError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise RunFileError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


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
