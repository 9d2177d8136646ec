"""The whole recipe, stage by stage: tokenizer -> pretrain -> sft -> rl -> control -> eval.

``train(run_dir, preset=...)`` writes a run folder; its names, and the stages in the order
below with the folder each writes and the stage each starts from, are engine/run.py's
(checkpoints/README.md shows the layout):

- ``tokenizer``: BPE trained on the world's pretraining documents (and a bounded sample of a
  user's, engine/train/user_data.py) (engine.tokens.tokenizer.train_bpe).
- ``pretrain``: next-token loss over those documents (and a user's token shard) -> ``base/``.
- ``sft``: the chat conversations, loss on assistant tokens, from ``base`` -> ``sft/``.
- ``rl``: GRPO-style practice on verifiable problems, from ``sft`` -> ``rl/``.
- ``control``: SFT continued from ``sft`` on the same conversations for as much compute as RL
  used (its steps = RL's token-passes / SFT's token-passes per step; control_steps) ->
  ``sft_control/``. It answers "was it RL, or just more training?".
- ``eval``: engine.data.evals.evaluate_run -> ``report.json``.

With ``resume=True`` finished stages are skipped and an unfinished one continues from its last
checkpoint. One trainer per run folder (engine.run.RunLock). Under torchrun every process runs
this; rank 0 alone writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from engine.data.files import DataFileError
from engine.progress.events import EventWriter
from engine.run import (
    RLHF_PEAK,
    STAGE_NAMES,
    TOKENIZER_FILE,
    RunFolder,
    RunLock,
    stage_named,
    world_seed,
)
from engine.train import distributed as D
from engine.train.from_run import plan_from_run
from engine.train.loop import (
    StageContext,
    TrainingError,
    TrainingStopped,
    finished_meta,
    read_meta,
    run_stage,
    unfinished_meta,
)
from engine.train.presets import Preset, get_preset, preset_from_dict
from engine.train.user_data import (
    DataPaths,
    UserData,
    data_paths,
    load_user_data,
    paths_from_record,
    shard_entry,
)


class PipelineError(ValueError):
    """Bad request (unknown stage, missing earlier stage, preset mismatch): said plainly."""


class _Events(EventWriter):
    """The run's EventWriter that also hands each event to a listener (the CLI's display)."""

    def __init__(self, run_dir: Path, enabled: bool, listener: Callable[[dict], None] | None):
        super().__init__(run_dir, enabled)
        self.listener = listener

    def emit(self, type: str, **fields) -> dict:
        event = super().emit(type, **fields)
        if self.listener is not None and self.enabled:
            self.listener(event)
        return event


def parse_stages(spec: str | list[str] | None) -> list[str]:
    if spec is None:
        return list(STAGE_NAMES)
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    bad = [s for s in names if s not in STAGE_NAMES]
    if bad or not names:
        raise PipelineError(f"unknown stage(s) {', '.join(bad) or '(none given)'}; "
                            f"choose from {','.join(STAGE_NAMES)}")
    return [s for s in STAGE_NAMES if s in names]  # always in pipeline order


def train(run_dir: str | Path, preset: str | None = None, stages: str | list[str] | None = None,
          resume: bool = False, device: str | None = None, seed: int = 0,
          on_event: Callable[[dict], None] | None = None,
          preset_obj: Preset | None = None, rl_families: str | None = None,
          pretrain_data: str | Path | None = None, sft_data: str | Path | None = None,
          rl_data: str | Path | None = None, on_bad: str = "skip",
          from_run: str | Path | None = None, micro_batch: int | None = None) -> dict:
    """Run the requested stages into ``run_dir``; returns {stage: summary}. ``preset`` None:
    the one an existing run was made with, else "tiny". ``rl_families`` ("arith,decimal_cmp"):
    what RL practises on, a new run only; so are ``*_data`` (a user's files each stage adds to
    the world's rows) and ``on_bad`` (skip or refuse their bad rows). Raises PipelineError (bad
    request), DataFileError (a data file missing or refused), RunLockedError, TrainingError
    (NaN...), TrainingStopped (Ctrl-C). ``from_run``: start from that run's base model
    (engine/train/from_run.py; FromRunError when it cannot). ``micro_batch``: at most this many
    rows a pass in pretraining and SFT, a new run or a resumed one (memory, not the update)."""
    run_dir = Path(run_dir)
    wanted = parse_stages(stages)
    start = plan_from_run(run_dir, from_run, preset, wanted if stages is not None else None)
    if start is not None:
        wanted, preset_obj = start.stages, preset_obj or start.preset
    if preset_obj is None and preset is not None:
        get_preset(preset)  # an unknown name fails here, before anything is written
    families = parse_rl_families(rl_families)
    # read before the run folder exists: a refused row or a missing file leaves nothing behind
    paths = data_paths(pretrain_data, sft_data, rl_data, on_bad)
    user = load_user_data(paths)
    info, dev = D.setup(device)
    lock = RunLock(run_dir) if info.is_main else None
    try:
        if lock:
            lock.acquire()
        p, seed, user = _settle_run(run_dir, preset, preset_obj, seed, resume,
                                    stages is not None, info, families, user,
                                    start.record if start else None)
        if micro_batch is not None:
            p = _with_micro_batch(run_dir, p, micro_batch, info)
        if start is not None:
            start.prepare(run_dir, info)
        events = _Events(run_dir, info.is_main, on_event)
        events.emit("run_start", pid=os.getpid(), preset=p.name, stages=wanted, seed=seed,
                    resumed=resume, world_size=info.world_size, device=str(dev))
        try:
            results = _run_stages(run_dir, p, wanted, resume, dev, seed, info, events, user)
        except TrainingStopped as e:
            events.try_emit("run_end", status="stopped", reason=str(e))
            raise
        except (TrainingError, PipelineError, DataFileError) as e:
            events.try_emit("run_end", status="stopped", reason=str(e), error=True)
            raise
        events.emit("run_end", status="done")
        return results
    finally:
        if lock:
            lock.release()
        D.teardown()


def parse_rl_families(spec: str | None) -> tuple[str, ...] | None:
    """"arith,decimal_cmp" -> ("arith", "decimal_cmp"); None -> None (the preset's)."""
    from engine.data.tasks import RL_FAMILIES

    if spec is None:
        return None
    names = tuple(s.strip() for s in spec.split(",") if s.strip())
    bad = [s for s in names if s not in RL_FAMILIES]
    if bad or not names:
        raise PipelineError(f"unknown RL famil{'ies' if len(bad) > 1 else 'y'} "
                            f"{', '.join(bad) or '(none given)'}; choose from "
                            f"{','.join(RL_FAMILIES)}")
    return names


def _settle_run(run_dir: Path, preset: str | None, preset_obj: Preset | None, seed: int,
                resume: bool, explicit_stages: bool, info: D.DistInfo,
                families: tuple[str, ...] | None = None,
                user: UserData | None = None,
                started_from: dict | None = None) -> tuple[Preset, int, UserData]:
    """Write run.json for a new run (with ``from``: the run it started from, if any); for an
    existing one check the request fits what it was (and read its data files again, from the
    paths it recorded)."""
    user = user or UserData()
    run = RunFolder(run_dir)
    if run.run_json.is_file():
        recorded = run.read_info()
        missing = [k for k in ("preset", "preset_config", "seed") if k not in recorded]
        if missing:
            raise PipelineError(f"{run.run_json} lacks {', '.join(missing)}: it is not a run "
                                "deepdive can continue (pick another --run)")
        if not (resume or explicit_stages):
            raise PipelineError(f"{run_dir} already holds a run; continue it with --resume, "
                                "retrain chosen stages with --stages, or pick another --run")
        if preset_obj is None and preset not in (None, recorded["preset"]):
            raise PipelineError(f"{run_dir} was made with preset {recorded['preset']!r}, "
                                f"not {preset!r}")
        try:
            p = preset_obj or preset_from_dict(recorded["preset_config"])
        except ValueError as e:
            raise PipelineError(f"{run.run_json}: {e}") from None
        if families is not None and families != p.rl.families:
            raise PipelineError(f"{run_dir} practises RL on {','.join(p.rl.families)}; the "
                                "families are chosen when a run starts (pick another --run)")
        return p, int(recorded["seed"]), _recorded_data(run_dir, recorded, user.paths)
    p = preset_obj or get_preset(preset or "tiny")
    if families is not None:
        p = dataclasses.replace(p, rl=dataclasses.replace(p.rl, families=families))
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "preset": p.name, "preset_config": p.to_dict(), "seed": seed,
            "data": {"world": "embedded (engine/data/world.py)", "world_seed": seed,
                     "labeler_error_rate": p.labeler_error_rate, **user.record},
            "versions": _versions(), "world_size": info.world_size,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **({"from": started_from} if started_from else {}),
        }
        run.write_info(record)
    return p, seed, user


def _with_micro_batch(run_dir: Path, p: Preset, rows: int, info: D.DistInfo) -> Preset:
    """The preset with pretraining's and SFT's (so the control's) passes capped at ``rows``
    (a stage whose passes are already smaller keeps them); run.json records it, so the run
    says how it was trained. Not part of what a run is: a resume that ran out of memory may
    take a smaller one."""
    if rows < 1:
        raise PipelineError(f"--micro-batch must be at least 1, got {rows}")

    def capped(cfg):
        return dataclasses.replace(cfg, micro_batch=min(cfg.micro_batch or rows, rows))

    p = dataclasses.replace(p, pretrain=capped(p.pretrain), sft=capped(p.sft))
    if info.is_main:
        run = RunFolder(run_dir)
        run.write_info({**run.read_info(), "preset_config": p.to_dict()})
    return p


def _recorded_data(run_dir: Path, recorded: dict, asked: DataPaths) -> UserData:
    """The data files a run was made with, read again; the same rows or a PipelineError."""
    data = recorded.get("data") or {}
    paths = paths_from_record(data)
    if asked.given() and asked != paths:
        raise PipelineError(f"{run_dir} was made with other data files ({_said(paths)}); the "
                            "data is chosen when a run starts (pick another --run)")
    user = load_user_data(paths)
    for stage in ("sft", "rl"):
        then, now = data.get(stage) or {}, user.record.get(stage) or {}
        if then.get("sha256") != now.get("sha256"):
            raise PipelineError(f"{now.get('path')}: the {stage} data changed since {run_dir} "
                                "began (restore it, or pick another --run)")
    if "pretrain" in data:
        user.record["pretrain"] = data["pretrain"]  # with its shard key, once pretrained
    return user


def _said(paths: DataPaths) -> str:
    named = [f"--{s}-data {getattr(paths, s)}" for s in ("pretrain", "sft", "rl")
             if getattr(paths, s) is not None]
    return ", ".join(named + [f"--on-bad {paths.on_bad}"]) if named else "none: the world only"


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    try:
        mine = version("deepdive")
    except PackageNotFoundError:
        mine = "dev"
    return {"deepdive": mine, "torch": torch.__version__, "python": platform.python_version()}


def _run_stages(run_dir: Path, p: Preset, wanted: list[str], resume: bool, dev: torch.device,
                seed: int, info: D.DistInfo, events: _Events, user: UserData) -> dict:
    from engine.data.world import build_world

    # the world the run was made with (its seed is the run's, unless run.json says otherwise:
    # bench/rlhf_seeds.py reruns later stages of one world under other seeds)
    world = build_world(world_seed(RunFolder(run_dir).read_info(), seed))
    results: dict = {}
    tok = None
    for stage in wanted:
        if stage == "tokenizer":
            tok = _tokenizer_stage(run_dir, p, world, resume, info, events, user)
            results[stage] = {"n_vocab": tok.n_vocab}
            continue
        if tok is None:
            tok = _load_tokenizer(run_dir)
        if stage == "eval":
            results[stage] = _eval_stage(run_dir, p, resume, dev, info, events)
        elif (stage == "control" and not p.control) or (
                stage in ("reward", "rlhf") and getattr(p, stage) is None):
            continue
        else:
            results[stage] = _train_stage(stage, run_dir, p, world, tok, resume, dev, seed,
                                          info, events, user)
    return results


# -- tokenizer ----------------------------------------------------------------------------------

def _tokenizer_stage(run_dir: Path, p: Preset, world, resume: bool, info: D.DistInfo,
                     events: _Events, user: UserData):
    from engine.data.world import pretrain_documents
    from engine.tokens.tokenizer import train_bpe

    path = RunFolder(run_dir).tokenizer
    if _all_ranks_see(resume and path.is_file(), info):
        return _load_tokenizer(run_dir)

    def train_tokenizer() -> None:
        t0 = time.perf_counter()
        sample = user.pretrain_sample()  # the user's text gets merges of its own
        docs = pretrain_documents(world) + sample
        events.emit("stage_start", stage="tokenizer", step=0, total_steps=1)
        tok = train_bpe(docs, p.vocab_size, name=f"run:{run_dir.name}")
        tok.save(path)
        n_tokens = sum(len(tok.encode(d)) for d in docs)
        n_chars = sum(len(d) for d in docs)
        summary = {"n_vocab": tok.n_vocab, "n_docs": len(docs), "tokens": n_tokens,
                   "chars_per_token": round(n_chars / max(n_tokens, 1), 3),
                   **({"user_docs": len(sample)} if sample else {}),
                   "elapsed_s": round(time.perf_counter() - t0, 3)}
        events.emit("stage_end", stage="tokenizer", step=1, summary=summary)

    _on_rank0(info, train_tokenizer, "train the tokenizer")
    return _load_tokenizer(run_dir)


T = TypeVar("T")


def _all_ranks_see(done: bool, info: D.DistInfo) -> bool:
    """Whether every rank found the stage's output already there. Agreed on before rank 0 may
    write it: a rank that looked after rank 0 wrote would skip the collective in _on_rank0 that
    the others enter, and wait for ever."""
    return not D.any_rank(not done, info)  # any rank that did not see it: do the work


def _on_rank0(info: D.DistInfo, work: Callable[[], T], what: str) -> T | None:
    """``work()`` on rank 0 while the other ranks wait (rank 0's result; None elsewhere). Where a
    barrier would have them wait for ever on a rank 0 that failed (a bad row refused, a full
    disk), they learn it from a flag instead (distributed.any_rank): rank 0 raises its own
    error, the others one saying so."""
    result, failure = None, None
    if info.is_main:
        try:
            result = work()
        except Exception as e:  # raised below, once every rank knows
            failure = e
    if D.any_rank(failure is not None, info):
        raise failure or PipelineError(f"rank 0 could not {what}; see its message")
    return result


def _load_tokenizer(run_dir: Path):
    from engine.tokens.tokenizer import Tokenizer

    path = RunFolder(run_dir).tokenizer
    if not path.is_file():
        raise PipelineError(f"{path} is missing: run the tokenizer stage first "
                            "(--stages tokenizer,...)")
    return Tokenizer.load(path)


# -- gradient stages ----------------------------------------------------------------------------

def _train_stage(stage: str, run_dir: Path, p: Preset, world, tok, resume: bool,
                 dev: torch.device, seed: int, info: D.DistInfo, events: _Events,
                 user: UserData) -> dict:
    from engine.model.checkpoint import load_checkpoint
    from engine.model.gpt import GPT, GPTConfig

    run, this = RunFolder(run_dir), stage_named(stage)
    ckpt_dir = run.model_dir(this.folder)
    if resume:
        done = finished_meta(ckpt_dir, stage)
        if done is not None:
            return done.get("metrics", {})
    meta = unfinished_meta(ckpt_dir, stage) if resume else None
    cfg, extra = _stage_config(stage, p, run_dir, meta)
    parent = run.model_dir(this.parent) if this.parent else None
    if meta is not None:
        model, _ = load_checkpoint(ckpt_dir, dev, build=_builder(stage))
    elif parent is not None:
        if finished_meta(parent, this.parent) is None:
            raise PipelineError(f"{stage} starts from {parent}, which is missing or unfinished; "
                                f"train the {this.parent} stage first")
        model, _ = load_checkpoint(parent, dev)
        if stage == "reward":
            from engine.model.reward import RewardModel

            model = RewardModel(model).to(dev)
    else:
        torch.manual_seed(seed)  # the same initial weights on every rank and every run
        model = GPT(GPTConfig(vocab_size=tok.n_vocab, **p.model)).to(dev)
    if meta is None and info.is_main:
        # a fresh (re)start: no stale checkpoint may be taken for ours (nor a stale RLHF peak)
        for stale in (ckpt_dir, run.model_dir(RLHF_PEAK) if stage == "rlhf" else None):
            if stale is not None and stale.exists():
                shutil.rmtree(stale)
    streams = None
    if stage == "pretrain" and user.paths.pretrain is not None:
        streams = _file_streams(run_dir, p, tok, user, info, resumed=meta is not None)
        extra["user_tokens"] = len(streams[0])
    task = _make_task(stage, p, world, tok, cfg, seed, dev, info, run_dir, user, streams,
                      stage_meta={"preset": p.name, "seed": seed, "tokenizer": TOKENIZER_FILE,
                                  "parent": str(parent) if parent else None})
    flops = peak = None
    if stage == "pretrain" and p.measure_mfu:
        from engine.model.device import peak_flops

        flops = training_flops_per_token(model, cfg.seq_len)
        peak = peak_flops(dev) * (info.world_size if dev.type == "cuda" else 1)
    if getattr(task, "probe", None):
        extra["probe"] = task.probe
        events.emit("probe", stage=stage, **task.probe)
    if stage in ("sft", "control") and p.sft_untrained_names:
        from engine.train.sft import leave_rows_untrained, name_token_ids

        ids = name_token_ids(tok, world)
        leave_rows_untrained(model, ids)
        extra["untrained_name_rows"] = len(ids)
    finish = None
    if stage in ("sft", "control") and p.sft_merge < 1.0:
        finish = _merge_with_base(run, dev, p.sft_merge)
        extra["merged_with_base"] = p.sft_merge  # the share of the stage's own weights kept
    ctx = StageContext(stage=stage, ckpt_dir=ckpt_dir, cfg=cfg, events=events, device=dev,
                       dist=info, flops_per_token=flops, peak_flops=peak,
                       meta={"preset": p.name, "seed": seed, "tokenizer": TOKENIZER_FILE,
                             "parent": str(parent) if parent else None, **extra},
                       finish=finish)
    # Pretraining's fixed-shape windows through torch.compile on a GPU (fused kernels; ~1.8x
    # the tokens a second on an H200, docs/measurements.md). Evals, samples and checkpoints use
    # the model itself (distributed.unwrap); later stages, whose shapes change every step, run
    # eagerly.
    compiled = stage == "pretrain" and p.compile and dev.type in COMPILE_ON
    trained = torch.compile(model) if compiled else model
    summary = run_stage(D.wrap(trained, info, dev), task, ctx, resume_meta=meta)
    D.barrier(info)  # rank 0 has saved this stage's weights before anyone starts the next stage
    return summary


def _merge_with_base(run: RunFolder, dev: torch.device, keep: float):
    """What ends SFT (and the control, the same recipe run longer): its weights moved back
    towards the base model's, ``keep`` of its own kept (WiSE-FT, engine/train/merge.py)."""
    def finish(model: torch.nn.Module) -> None:
        from engine.model.checkpoint import load_checkpoint
        from engine.train.merge import interpolate

        base, _ = load_checkpoint(run.model_dir("pretrain"), dev)
        try:
            interpolate(model, base.state_dict(), keep)
        except ValueError as e:
            raise PipelineError(f"cannot merge with the base model: {e}") from None

    return finish


# Devices a preset's ``compile`` applies on: on a CPU, inductor spends minutes in a C++ compiler
# (and needs one) for little gain, so a GPU preset tried on a laptop runs eagerly.
COMPILE_ON = ("cuda",)


def _builder(stage: str):
    """What a stage's checkpoint loads into: the reward model wraps a GPT."""
    if stage == "reward":
        from engine.model.reward import RewardModel

        return RewardModel.build
    from engine.model.gpt import GPT

    return GPT


def training_flops_per_token(model, seq_len: int) -> float:
    """The model's 6N + attention estimate, with attention at the window we actually train on
    (``flops_per_token`` assumes the full block; our windows may be shorter)."""
    c = model.config
    return model.flops_per_token() - 12.0 * c.n_layer * c.n_embd * (c.block_size - seq_len)


def _stage_config(stage: str, p: Preset, run_dir: Path, meta: dict | None):
    """The stage's TrainConfig, and what its meta.json records about the choice (the
    control: how its steps were matched to RL)."""
    if stage == "pretrain":
        return p.pretrain, {}
    if stage == "sft":
        return p.sft, {}
    if stage in ("rl", "reward", "rlhf"):
        return getattr(p, stage), {}
    if meta is not None:  # a resumed control keeps the steps it was planned with
        steps, matched = int(meta["total_steps"]), {"matched_on": meta.get("matched_on")}
    else:
        run = RunFolder(run_dir)
        rl_meta, sft_meta = read_meta(run.model_dir("rl")), read_meta(run.model_dir("sft"))
        if not (rl_meta and rl_meta.get("done") and sft_meta and sft_meta.get("done")):
            raise PipelineError("the control stage needs finished sft/ and rl/ stages "
                                "(it trains SFT on as much compute as RL used)")
        steps, on = control_steps(rl_meta["metrics"], sft_meta["metrics"])
        matched = {"matched_on": on}
    cfg = p.sft
    return dataclasses.replace(cfg, steps=steps, warmup=min(cfg.warmup, steps // 10),
                               eval_every=max(1, min(cfg.eval_every, steps)),
                               ckpt_every=max(1, min(cfg.ckpt_every, steps))), matched


def control_steps(rl: dict, sft: dict) -> tuple[int, str]:
    """SFT steps that spend the compute RL spent, and what they were matched on.

    ``"compute"``: token-passes (engine.train.loop.StepResult), the same on every machine and
    every run with the seed. ``"seconds"``: RL's training seconds over SFT's seconds per step,
    for runs whose stages did not record compute (made before it was, or resumed from such a
    checkpoint): machine-dependent, and the report card says which it was."""
    if rl.get("compute") and sft.get("compute") and sft.get("steps"):
        per_step = float(sft["compute"]) / int(sft["steps"])
        return max(1, round(float(rl["compute"]) / per_step)), "compute"
    rl_s = float(rl.get("train_s", 0))
    return max(1, round(rl_s / max(float(sft.get("sec_per_step") or 1.0), 1e-6))), "seconds"


def training_data(stage: str, p: Preset, world, seed: int,
                  unknown_facts: frozenset | set = frozenset(),
                  user: UserData | None = None) -> dict:
    """Every row a stage trains on, as plain data (the leak tests read exactly this).

    pretrain: {"documents", "file_documents" (a user's, read whole: the stage itself reads
    their token shard)}; sft/control: {"conversations" (the world's, then a user's), "documents"
    (rehearsal: only documents naming no held-out entity), None when the preset has none}; rl:
    {"train" (the world's, then a user's), "eval"} problems (train keys; the periodic eval reads
    dev keys, the report card alone reads test).
    """
    from engine.data import world as W

    user = user or UserData()
    if stage == "pretrain":
        return {"documents": W.pretrain_documents(world),
                "file_documents": user.pretrain_sample(max_chars=None)}
    if stage in ("sft", "control"):
        convs = W.sft_conversations(world, labeler_error_rate=p.labeler_error_rate,
                                    include_idk=p.include_idk, unknown_facts=unknown_facts,
                                    polite_share=p.sft_polite_share)
        if p.open_sft_rows:
            from engine.data.open_tasks import open_conversations

            convs += open_conversations(world, p.open_sft_rows, seed)
        convs += user.conversations
        docs = (W.documents_about_train(world, W.pretrain_documents(world))
                if p.sft_doc_frac > 0 else None)
        return {"conversations": convs, "documents": docs}
    if stage == "rl":
        from engine.data.tasks import rl_problems

        return {"train": rl_problems(world, "train", p.rl.n_train_problems, seed,
                                     p.rl.families) + user.problems,
                "eval": rl_problems(world, "dev", p.rl.n_eval_problems, seed + 1),
                "test": rl_problems(world, "test", p.rl.n_eval_problems, seed + 2,
                                    p.rl.families)}
    if stage in ("reward", "rlhf"):
        from engine.data.open_tasks import open_tasks

        return {"tasks": open_tasks(world, "train", 10_000)}
    raise PipelineError(f"stage {stage!r} trains on no rows")


def _make_task(stage: str, p: Preset, world, tok, cfg, seed: int, dev: torch.device,
               info: D.DistInfo, run_dir: Path, user: UserData,
               streams: tuple[np.ndarray, np.ndarray] | None = None,
               stage_meta: dict | None = None):
    if stage == "pretrain":
        from engine.train.pretrain import PretrainTask

        # the user's documents come as the shard's tokens (``streams``), not as texts
        docs = training_data(stage, p, world, seed)["documents"]
        return PretrainTask(tok, docs, cfg, seed, p.val_frac, dev, info, extra=streams)
    if stage in ("sft", "control"):
        return _sft_task(stage, p, world, tok, cfg, seed, dev, info, run_dir, user)
    if stage in ("reward", "rlhf"):
        return _rlhf_task(stage, world, tok, cfg, seed, dev, info, run_dir, stage_meta or {})
    from engine.train.rl import RlTask

    data = training_data(stage, p, world, seed, user=user)
    return RlTask(tok, data["train"], data["eval"], cfg, seed, dev, info, data["test"])


def _sft_task(stage: str, p: Preset, world, tok, cfg, seed: int, dev: torch.device,
              info: D.DistInfo, run_dir: Path, user: UserData):
    """SFT rows, with "I don't know" where the base model was probed not to know a fact."""
    from engine.train.sft import SftTask

    unknown: set = set()
    probe = None
    if p.probe_samples > 0:
        from engine.model.checkpoint import load_checkpoint
        from engine.train.probe import unknown_facts

        base, _ = load_checkpoint(RunFolder(run_dir).model_dir("pretrain"), dev)
        unknown, probe = unknown_facts(base, tok, world, p.probe_samples, seed)
        del base
    data = training_data(stage, p, world, seed, unknown, user)
    task = SftTask(tok, data["conversations"], cfg, seed, p.val_frac, dev, info,
                   documents=data["documents"], doc_frac=p.sft_doc_frac,
                   learn_copies=p.sft_learn_copies)
    task.probe = probe
    return task


def _rlhf_task(stage: str, world, tok, cfg, seed: int, dev: torch.device, info: D.DistInfo,
               run_dir: Path, stage_meta: dict):
    """The reward model's task (pairs of SFT replies), or RLHF's (the SFT model for the KL,
    the trained reward model, and where the dev gold peak goes)."""
    from engine.model.checkpoint import load_checkpoint
    from engine.model.reward import RewardModel
    from engine.train.rlhf import RewardTask, RlhfTask

    run = RunFolder(run_dir)
    sft, _ = load_checkpoint(run.model_dir("sft"), dev)
    if stage == "reward":
        return RewardTask(tok, world, sft, cfg, seed, dev, info)
    if finished_meta(run.model_dir("reward"), "reward") is None:
        raise PipelineError("the rlhf stage needs a finished reward model (train the reward "
                            "stage first: --stages reward,rlhf)")
    rm, _ = load_checkpoint(run.model_dir("reward"), dev, build=RewardModel.build)
    return RlhfTask(tok, world, sft, rm, cfg, seed, dev, info,
                    peak=(run.model_dir(RLHF_PEAK), stage_meta))


def _file_streams(run_dir: Path, p: Preset, tok, user: UserData, info: D.DistInfo,
                  resumed: bool) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) token ids of the user's pretraining files: read-only memmaps of their
    token shard (never copied whole: a batch reads its own windows, engine/train/pretrain.py).

    Rank 0 builds (or finds) the shard and records its key in run.json; the other ranks then
    find it in the cache. If rank 0 fails (a bad row refused, a full disk), every rank stops:
    the others learn it from a flag where they would otherwise wait at a barrier for ever. A
    stage resumed mid-way must see the very tokens it began with."""
    from engine.data.shards import token_shard

    path = user.paths.pretrain

    def build():
        shard = token_shard(path, tok, on_bad=user.paths.on_bad)
        _record_shard(run_dir, path, shard, resumed)
        return shard

    shard = _on_rank0(info, build, f"build the token shard of {path}")
    if shard is None:
        shard = token_shard(path, tok, on_bad=user.paths.on_bad)
    return shard.split(p.val_frac)


def _record_shard(run_dir: Path, path: Path, shard, resumed: bool) -> None:
    run = RunFolder(run_dir)
    record = run.read_info()
    then = (record.get("data") or {}).get("pretrain") or {}
    if resumed and then.get("shard") not in (None, shard.header["key"]):
        raise PipelineError(f"{path}: the pretraining data (or the tokenizer) changed since the "
                            "pretrain stage began (restore it, or retrain the stage with "
                            "--stages pretrain,...)")
    record.setdefault("data", {})["pretrain"] = shard_entry(path, shard)
    run.write_info(record)  # the paths were written at the start; this adds what was read


# -- eval ---------------------------------------------------------------------------------------

def _eval_stage(run_dir: Path, p: Preset, resume: bool, dev: torch.device, info: D.DistInfo,
                events: _Events) -> dict:
    from engine.data.evals import evaluate_run

    report_path = RunFolder(run_dir).report()
    if _all_ranks_see(resume and report_path.is_file(), info):
        return json.loads(report_path.read_text(encoding="utf-8")).get("metrics", {})

    def progress(done=None, total=None, *_, **__):
        # evaluate_run reports (done, total); anything else is not worth an event
        if isinstance(done, int | float) and isinstance(total, int | float):
            events.emit("step", stage="eval", step=int(done), total_steps=int(total))

    def evaluate() -> None:
        t0 = time.perf_counter()
        events.emit("stage_start", stage="eval", step=0, total_steps=1)
        report = evaluate_run(run_dir, device=str(dev), n_per_family=p.eval_n_per_family,
                              progress=progress)
        summary = {**report.get("metrics", {}), "elapsed_s": round(time.perf_counter() - t0, 3)}
        events.emit("stage_end", stage="eval", step=1, summary=summary)

    _on_rank0(info, evaluate, "evaluate the run")
    return json.loads(report_path.read_text(encoding="utf-8")).get("metrics", {})
