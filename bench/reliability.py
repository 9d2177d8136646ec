"""Reliability soak: kill the trainer at random instants, resume, and check nothing is lost;
then throw bad input and corrupted files at the loaders.

1. A reference: the micro pipeline, uninterrupted, in a subprocess.
2. The victim: the same pipeline (same seed) SIGKILLed at >= 20 planned instants spread over
   every stage — at a random step, in the middle of a checkpoint write (the trainer runs with
   slowed-down file writes and renames so a kill lands inside a save), and at random seconds
   after start — resumed with ``--resume`` after each kill. After every kill each file on disk
   must load (run.json, tokenizer.json, every model folder, report.json); at the end every
   model folder must equal the reference bit for bit, every logged loss must equal the
   reference's at that step, and the folded events (engine.progress.state.RunState, as the
   Train pane folds them) must hold every step once, none lost.
3. bench/badinput.py: random nasty strings into the tokenizers and the chat renderer.
4. bench/badfiles.py: corrupted run files into the loaders.

Usage: python bench/reliability.py [--kills 24] [--seed 0] [--keep DIR]
The last line is one JSON object: kills_tried, kills_survived, resumes_exact (of the resumes
that logged a step the reference logged: every such loss equal), final_equal (every model
folder bit for bit), bad_inputs_tried, crashes (must be 0), corrupt_files_tried,
corrupt_files_rejected, and the details.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TRAIN_STAGES = ("pretrain", "sft", "rl", "control")
STEP_SLEEP = "0.04"  # seconds per step (DEEPDIVE_TEST_STEP_SLEEP): room to land a kill
SAVE_PAUSE = 0.05  # seconds the victim pauses after each checkpoint file and rename


@dataclass(frozen=True)
class Kill:
    """When to SIGKILL: at ``stage``'s step >= ``at`` ("step"), while ``stage`` saves a
    checkpoint ("save"), or ``at`` seconds after start ("time"); plus a random ``delay``."""
    kind: str
    stage: str
    at: float
    delay: float


# -- the trainer, as a subprocess ---------------------------------------------------------------

def trainer(run: Path, seed: int, resume: bool, slow_saves: bool) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--as-trainer" if slow_saves else "--as-plain-trainer",
           "--", "train", "--preset", "micro", "--run", str(run), "--device", "cpu",
           "--quiet", "--seed", str(seed)] + (["--resume"] if resume else [])
    env = {**os.environ, "DEEPDIVE_TEST_STEP_SLEEP": STEP_SLEEP, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=ROOT)


def _as_trainer(argv: list[str], slow_saves: bool) -> None:
    """Run ``deepdive`` in this process; with slow saves, every checkpoint file write and each
    of the swap's renames pauses, so a kill lands inside a save often (the bytes are the
    same)."""
    if slow_saves:
        import engine.model.checkpoint as ck

        real_write = ck._write_synced

        def slow_write(path, data):
            real_write(path, data)
            time.sleep(SAVE_PAUSE)

        class SlowOs:  # os, with a pause after each rename: the gap between the two is real
            def __getattr__(self, name):
                return getattr(os, name)

            @staticmethod
            def replace(src, dst):
                os.replace(src, dst)
                time.sleep(SAVE_PAUSE)

        ck._write_synced, ck.os = slow_write, SlowOs()
    from deepdive.cli import main

    sys.argv = ["deepdive", *argv]
    main()


# -- planning and landing kills -----------------------------------------------------------------

def plan_kills(n: int, rng: random.Random) -> list[Kill]:
    """``n`` kills spread over every stage, in pipeline order (each is reachable after a resume
    goes back to the last checkpoint). Micro's step counts: pretrain 30, sft 15, rl 3."""
    steps = {"pretrain": 30, "sft": 15, "rl": 3, "control": 1}
    share = {"time": 0.1, "save": 0.25, "eval": 0.1}
    kills: list[Kill] = []
    for _ in range(max(1, round(n * share["time"]))):  # startup, tokenizer, whatever is on
        kills.append(Kill("time", "tokenizer", rng.uniform(0.5, 4.0), 0.0))
    for i in range(max(1, round(n * share["save"]))):
        kills.append(Kill("save", TRAIN_STAGES[i % 3], 0, rng.uniform(0, 3 * SAVE_PAUSE)))
    for _ in range(max(1, round(n * share["eval"]))):
        kills.append(Kill("step", "eval", rng.randint(1, 4), rng.uniform(0, 0.05)))
    weights = {"pretrain": 0.45, "sft": 0.3, "rl": 0.15, "control": 0.1}
    while len(kills) < n:
        stage = rng.choices(list(weights), list(weights.values()))[0]
        kills.append(Kill("step", stage, rng.randint(1, steps[stage]), rng.uniform(0, 0.05)))
    order = ("tokenizer", *TRAIN_STAGES, "eval")
    return sorted(kills, key=lambda k: (order.index(k.stage), k.kind == "step", k.at))


def land(kill: Kill, proc: subprocess.Popen, run: Path, offset: int, folder: str,
         timeout: float = 300) -> str:
    """Wait for the kill's moment, then SIGKILL. Returns "killed", "killed mid-save" when the
    save's half-swapped folder was still there after the kill (seen, not planned), or "missed"
    when the trainer finished first (the moment had passed: its stage was already done)."""
    from engine.progress.events import EventFollower

    follower = EventFollower(run / "events.jsonl")
    follower.offset = offset
    t0, deadline = time.time(), time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return "missed"
        if _moment(kill, follower, run, folder, t0, proc.pid):
            time.sleep(kill.delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            mid_save = any((run / f".{folder}.{part}-{proc.pid}").exists()
                           for part in ("new", "old")) if folder else False
            return "killed mid-save" if mid_save else "killed"
        time.sleep(0.003)
    proc.kill()
    raise TimeoutError(f"trainer neither reached {kill} nor finished")


def _moment(kill: Kill, follower, run: Path, folder: str, t0: float, pid: int) -> bool:
    if kill.kind == "time":
        return time.time() - t0 >= kill.at
    if kill.kind == "save":  # this trainer's own half-swapped folders, not a dead one's
        return any((run / f".{folder}.{part}-{pid}").exists() for part in ("new", "old"))
    return any(e.get("type") == "step" and e.get("stage") == kill.stage
               and isinstance(e.get("step"), int) and e["step"] >= kill.at
               for e in follower.poll())


# -- checks -------------------------------------------------------------------------------------

def loads_cleanly(run: Path) -> list[str]:
    """What on disk fails to load right after a kill ([] = everything there loads)."""
    from engine.model.checkpoint import load_checkpoint
    from engine.run import STAGE_FOLDERS, RunFolder
    from engine.tokens.tokenizer import Tokenizer

    folder, bad = RunFolder(run), []
    checks = [(folder.run_json, lambda p: folder.read_info()),
              (folder.tokenizer, Tokenizer.load),
              (folder.report(), lambda p: json.loads(p.read_text(encoding="utf-8")))]
    for path, load in checks:
        if path.exists():
            try:
                load(path)
            except Exception as e:  # noqa: BLE001 - any failure to load is the finding
                bad.append(f"{path.name}: {e}")
    for name in STAGE_FOLDERS:
        if (run / name).exists() or any(run.glob(f".{name}.old-*")):
            try:
                load_checkpoint(run / name, build=_builder(name))
            except Exception as e:  # noqa: BLE001
                bad.append(f"{name}/: {e}")
    return bad


def _builder(folder: str):
    """What a stage folder's weights load into: the reward model's wrap a GPT."""
    from engine.model.gpt import GPT
    from engine.model.reward import RewardModel

    return RewardModel.build if folder == "reward" else GPT


def same_weights(a: Path, b: Path) -> dict[str, bool]:
    """Each model folder of run ``a`` against ``b``'s, tensor by tensor, bit for bit."""
    import torch

    from engine.model.checkpoint import load_checkpoint
    from engine.run import STAGE_FOLDERS

    out = {}
    for name in STAGE_FOLDERS:
        ma, _ = load_checkpoint(a / name, build=_builder(name))
        mb, _ = load_checkpoint(b / name, build=_builder(name))
        sa, sb = ma.state_dict(), mb.state_dict()
        out[name] = sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    return out


def logged_losses(events: list[dict]) -> dict[tuple[str, int], float]:
    return {(e["stage"], e["step"]): e["loss"] for e in events
            if e.get("type") == "step" and e.get("stage") in TRAIN_STAGES
            and isinstance(e.get("loss"), float)}


def folded_steps_ok(events: list[dict], reference: list[dict]) -> list[str]:
    """Fold the killed run's events as the Train pane does; each stage's loss curve must hold
    every step the reference logged, each once, with the reference's value."""
    from engine.progress.state import RunState

    state, ref = RunState(series_cap=1 << 20), RunState(series_cap=1 << 20)
    state.apply_all(events)
    ref.apply_all(reference)
    problems = []
    for stage in TRAIN_STAGES:
        name = "reward" if stage == "rl" else "loss"  # the curve the pane draws for the stage
        mine, theirs = state.curve(stage, name), ref.curve(stage, name)
        xs, ys = mine.points() if mine else ([], [])
        rx, ry = theirs.points() if theirs else ([], [])
        if len(set(xs)) != len(xs) or list(xs) != sorted(xs):
            problems.append(f"{stage}: steps repeated or out of order {xs}")
        got = dict(zip(xs, ys, strict=True))
        lost = [x for x in rx if x not in got]
        wrong = [x for x, y in zip(rx, ry, strict=True) if x in got and got[x] != y]
        if lost or wrong:
            problems.append(f"{stage}: lost steps {lost}, different losses at {wrong}")
    return problems


# -- the soak -----------------------------------------------------------------------------------

def reference_run(work: Path, seed: int) -> Path:
    """The micro pipeline, uninterrupted: what every killed-and-resumed run must equal."""
    ref = work / "reference"
    proc = trainer(ref, seed, resume=False, slow_saves=False)
    if proc.wait() != 0:
        raise RuntimeError(f"the reference run failed:\n{proc.stdout.read()}")
    return ref


def soak(kills: list[Kill], seed: int, work: Path, ref: Path) -> dict:
    """Kill the victim run at each planned moment, resume, and compare with ``ref``."""
    from engine.progress.events import read_events
    from engine.run import stage_named

    run = work / "victim"
    tried = survived = missed = crashes = mid_save = 0
    starts: list[int] = []  # where each trainer process's events begin in events.jsonl
    failures: list[str] = []
    events_path = run / "events.jsonl"
    for kill in kills:
        starts.append(events_path.stat().st_size if events_path.exists() else 0)
        proc = trainer(run, seed, resume=(run / "run.json").exists(), slow_saves=True)
        folder = "" if kill.stage in ("tokenizer", "eval") else stage_named(kill.stage).folder
        landed = land(kill, proc, run, starts[-1], folder)
        if landed == "missed":
            out = proc.stdout.read()
            if proc.returncode != 0:
                crashes += "Traceback" in out
                failures.append(f"{kill}: a resume exited {proc.returncode}: {out[-400:]}")
            # the run finished: this and every later moment can no longer be reached
            missed = len(kills) - tried
            break
        tried += 1
        mid_save += landed == "killed mid-save"
        bad = loads_cleanly(run)
        survived += not bad
        failures += [f"after {kill}: {b}" for b in bad]
    starts.append(events_path.stat().st_size)
    proc = trainer(run, seed, resume=True, slow_saves=False)  # and now to the end
    out, rc = proc.communicate()[0], proc.returncode
    if rc != 0:
        crashes += "Traceback" in out
        failures.append(f"the final resume exited {rc}: {out[-400:]}")
    reference_events = read_events(ref / "events.jsonl")
    ref_losses = logged_losses(reference_events)
    raw = events_path.read_bytes()
    ends = starts[1:] + [len(raw)]
    resumed = list(zip(starts, ends, strict=True))[1:]  # every process after the first
    exact = compared = 0
    for start, end in resumed:
        part = [json.loads(line) for line in raw[start:end].splitlines() if _is_json(line)]
        # a resumed stretch also logs its first step, which the reference may not have logged;
        # one killed before it logged any step has nothing to compare (the weights still do)
        shared = {k: v for k, v in logged_losses(part).items() if k in ref_losses}
        compared += bool(shared)
        exact += bool(shared) and all(ref_losses[k] == v for k, v in shared.items())
    events = read_events(events_path)
    weights = same_weights(run, ref) if rc == 0 else {}
    return {"kills_tried": tried, "kills_survived": survived, "kills_missed": missed,
            "resumes": len(resumed), "resumes_checked": compared, "resumes_exact": exact,
            "final_equal": bool(weights) and all(weights.values()), "weights_equal": weights,
            "events_problems": folded_steps_ok(events, reference_events) if rc == 0 else [],
            "kills_by_stage": _count(k.stage for k in kills[:tried]),
            "kills_mid_save": mid_save,
            "trainer_crashes": crashes, "failures": failures[:10]}


def _is_json(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("--as-trainer", "--as-plain-trainer"):
        _as_trainer(sys.argv[3:], slow_saves=sys.argv[1] == "--as-trainer")
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="leave the run folders here (default: a temp dir)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="deepdive-soak-"))
    t0 = time.perf_counter()
    try:
        plan = plan_kills(args.kills, random.Random(args.seed))
        result = soak(plan, args.seed, work, reference_run(work, args.seed))
        from badfiles import run_corrupt_files
        from badinput import run_bad_inputs

        bad_in = run_bad_inputs(2000, args.seed)
        bad_files = run_corrupt_files(args.seed)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    summary = {
        "kills_tried": result["kills_tried"], "kills_survived": result["kills_survived"],
        "resumes_exact": result["resumes_exact"], "resumes_checked": result["resumes_checked"],
        "final_equal": result["final_equal"],
        "bad_inputs_tried": bad_in["bad_inputs_tried"],
        "crashes": result["trainer_crashes"] + bad_in["crashes"] + bad_files["crashes"],
        "corrupt_files_tried": bad_files["corrupt_files_tried"],
        "corrupt_files_rejected": bad_files["corrupt_files_rejected"],
        "soak": result, "bad_input": bad_in, "bad_files": bad_files,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
