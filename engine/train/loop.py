"""The one training loop every stage shares (pretrain, SFT, RL, the SFT control).

A stage is a ``StageTask``: it knows how to make the loss of step ``k`` (its batch is derived
from (seed, k), so a resumed run sees exactly the batches the killed one would have), how to
evaluate, and what to sample. The loop owns everything else:

- AdamW, linear warmup then cosine/linear decay, gradient clipping;
- gradient accumulation: a rank's rows in equal parts of at most ``micro_batch`` rows;
- ``step`` / ``eval`` / ``sample`` / ``checkpoint`` / ``stage_end`` events
  (engine/progress/events.py);
- periodic checkpoints with optimizer state, and a final one without it;
- resume: a stage whose folder holds an unfinished checkpoint continues from its step;
- a stop request (Ctrl-C, SIGTERM) saves a checkpoint at the next step boundary;
- a NaN/inf loss stops with an ``error`` event; the last good checkpoint is left untouched;
  so does running out of memory, saying which ``--micro-batch`` to resume with.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from engine.progress.events import EventWriter
from engine.run import OPTIMIZER_FILE
from engine.train.distributed import DistInfo, all_reduce_mean, broadcast_flag, unwrap
from engine.train.presets import StageConfig


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, bad data); the message says what and what is still safe."""


class TrainingStopped(Exception):
    """A stop was requested (Ctrl-C / SIGTERM); a checkpoint was saved first."""


@dataclass
class StepResult:
    loss: torch.Tensor | None  # what to backpropagate; None = nothing to learn from this step
    tokens: int  # tokens processed (all ranks), for tok/s
    metrics: dict = field(default_factory=dict)  # extra fields for the step event (RL: reward...)
    log_loss: float | None = None  # the figure to report when it is not ``loss`` itself
    # Compute in token-passes: one token through a forward pass = 1, forward + backward = 3
    # (the 2N vs 6N FLOPs per token of the usual estimate). The control is matched on it.
    # None: 3 x tokens, a plain training step.
    compute: float | None = None


class StageTask(Protocol):
    """``step`` makes the loss of step ``k``. A task that sets ``ACCUMULATES = True`` also takes
    ``part, parts``: the loss of part ``part`` of this rank's rows cut in ``parts`` equal parts,
    scaled so the parts' losses add up to the whole step's; its tokens and metrics still
    describe the whole step."""

    def step(self, model: torch.nn.Module, step: int) -> StepResult: ...
    def evaluate(self, model: torch.nn.Module, step: int) -> dict: ...
    def sample(self, model: torch.nn.Module, step: int) -> tuple[str, str] | None: ...


@dataclass
class StageContext:
    stage: str  # the event name: "pretrain" | "sft" | "rl" | "control"
    ckpt_dir: Path  # where this stage's checkpoints go: engine.run.Stage.folder in the run
    cfg: StageConfig
    events: EventWriter
    device: torch.device
    dist: DistInfo = field(default_factory=DistInfo)
    meta: dict = field(default_factory=dict)  # extra meta.json fields (preset, seed, parent...)
    flops_per_token: float | None = None  # for MFU; None where it means nothing (RL)
    peak_flops: float | None = None
    # Run on the (unwrapped) model right after the last update, before the final eval, sample
    # and checkpoint, so that all three describe the weights saved (SFT's merge with its base,
    # engine/train/merge.py).
    finish: Callable[[torch.nn.Module], None] | None = None


# -- stop requests ------------------------------------------------------------------------------

_stop_requested = False


def request_stop(*_args) -> None:
    """Ask the running loop to checkpoint and stop at the next step boundary."""
    global _stop_requested
    if _stop_requested:  # a second Ctrl-C means now
        raise KeyboardInterrupt
    _stop_requested = True


def install_stop_handlers() -> Callable[[], None]:
    """SIGINT and SIGTERM stop at a step boundary (never mid-update). Main thread only.
    Returns a function that puts the previous handlers back."""
    global _stop_requested
    _stop_requested = False
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def stop_requested() -> bool:
    return _stop_requested


# -- schedule and optimizer ---------------------------------------------------------------------

def lr_at(step: int, cfg: StageConfig) -> float:
    """Learning rate for (0-based) step: linear warmup, then cosine or linear decay."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    progress = min(max(progress, 0.0), 1.0)
    if cfg.decay == "linear":
        frac = 1.0 - progress
    else:
        frac = 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.lr * (cfg.min_lr_frac + (1.0 - cfg.min_lr_frac) * frac)


def make_optimizer(model: torch.nn.Module, cfg: StageConfig) -> torch.optim.Optimizer:
    """AdamW; matrices decay, gains (norms) do not, as in nanoGPT. On a GPU the fused kernel
    (one launch for every parameter's update instead of several per tensor)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    fused = bool(params) and all(p.is_cuda for p in params)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, fused=fused)


def accumulation_steps(rows: int, micro_batch: int | None) -> int:
    """Passes a rank's ``rows`` take so that none holds more than ``micro_batch`` rows: the
    fewest that cut them in equal parts (equal parts keep the step's mean loss exact)."""
    if not micro_batch or rows <= micro_batch:
        return 1
    return next(k for k in range(2, rows + 1) if rows % k == 0 and rows // k <= micro_batch)


def _forward_backward(model: torch.nn.Module, task: StageTask, step: int, parts: int,
                      poison: bool) -> tuple[StepResult, float | None]:
    """The step's gradients, accumulated over ``parts`` passes; (the last part's result, the
    summed loss on this rank, None when there was nothing to learn from). Under DDP only the
    last pass all-reduces the gradients (``no_sync`` before it)."""
    total: float | None = None
    for part in range(parts):
        last = part == parts - 1
        quiet = model.no_sync() if not last and hasattr(model, "no_sync") else nullcontext()
        with quiet:
            res = task.step(model, step) if parts == 1 else task.step(model, step, part, parts)
            if res.loss is None:
                continue
            if poison:
                res.loss = res.loss * float("nan")
            res.loss.backward()
            total = (total or 0.0) + float(res.loss.detach())
    return res, total


def _out_of_memory(ctx: StageContext, step: int, rows: int, last_ckpt: str | None,
                   splits: bool) -> str:
    """The error for a pass that did not fit, with the way on where there is one: fewer rows a
    pass for a stage that cuts its batch (pretraining, SFT), and while a pass holds several."""
    msg = (f"{ctx.stage}: out of memory at step {step + 1} with {rows} rows in one pass. "
           f"Last good checkpoint: {last_ckpt or 'none'}. ")
    if splits and rows > 1:
        msg += ("Continue with fewer rows a pass: deepdive train --run <run> --resume "
                f"--micro-batch {rows // 2}")
    else:
        msg += ("This stage cannot take fewer rows a pass: use a smaller preset, more GPUs "
                "(each takes its share of the batch), or a device with more memory")
    ctx.events.try_emit("error", stage=ctx.stage, step=step + 1, message=msg,
                        last_checkpoint=last_ckpt)
    return msg


# -- test hooks ---------------------------------------------------------------------------------

def _test_hooks(stage: str) -> tuple[int | None, float]:
    """(step to poison with NaN, seconds to sleep per step) from DEEPDIVE_TEST_* variables.

    Tests use them to prove the NaN stop and to kill a trainer mid-stage at a known pace.
    """
    nan_at = None
    spec = os.environ.get("DEEPDIVE_TEST_NAN", "")
    if ":" in spec:
        name, at = spec.split(":", 1)
        if name == stage:
            nan_at = int(at)
    return nan_at, float(os.environ.get("DEEPDIVE_TEST_STEP_SLEEP", "0") or 0)


# -- checkpoints --------------------------------------------------------------------------------

def unfinished_meta(ckpt_dir: Path, stage: str) -> dict | None:
    """The meta of a resumable checkpoint of ``stage`` in ``ckpt_dir``, else None."""
    meta = read_meta(ckpt_dir)
    if meta and meta.get("train_stage") == stage and not meta.get("done"):
        return meta
    return None


def finished_meta(ckpt_dir: Path, stage: str) -> dict | None:
    meta = read_meta(ckpt_dir)
    if meta and meta.get("train_stage") == stage and meta.get("done"):
        return meta
    return None


def read_meta(ckpt_dir: Path) -> dict | None:
    """A checkpoint's meta.json, or None where there is no checkpoint at all. A damaged one
    raises CheckpointError: taking it for "absent" would delete it and retrain silently."""
    from engine.model.checkpoint import find_checkpoint_dir
    from engine.model.checkpoint import read_meta as _read

    folder = find_checkpoint_dir(ckpt_dir)  # a save killed mid-swap leaves its .old copy
    if folder is None or not any(folder.iterdir()):
        return None  # never saved
    return _read(folder)


class StageClock:
    """Wall time of a stage across resumes, and how much of it went to evals and samples
    (``train_s`` = the rest), and the compute spent (what the extra-SFT control is matched
    against: unlike seconds, it is the same on every machine and every run)."""

    def __init__(self, elapsed0: float = 0.0, side0: float = 0.0,
                 compute0: float | None = 0.0):
        self.t0, self.elapsed0, self.side = time.perf_counter(), elapsed0, side0
        # token-passes trained so far (StepResult.compute), resumes too; None once unknown (a
        # resume from a checkpoint that did not record it: a partial count would mislead)
        self.compute = compute0

    def add_compute(self, res: StepResult) -> None:
        if self.compute is not None:
            self.compute += 3.0 * res.tokens if res.compute is None else res.compute

    def elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t0

    def train_s(self) -> float:
        return self.elapsed() - self.side


def _save(ctx: StageContext, model, optimizer, step: int, done: bool, clock: StageClock,
          metrics: dict, last_ckpt: str | None) -> None:
    from engine.model.checkpoint import CheckpointError, save_checkpoint

    if not ctx.dist.is_main:
        return
    core = unwrap(model)
    meta = {**ctx.meta, "config": core.config.to_dict(), "stage": ctx.ckpt_dir.name,
            "train_stage": ctx.stage, "step": step, "total_steps": ctx.cfg.steps, "done": done,
            "elapsed_s": round(clock.elapsed(), 3), "side_s": round(clock.side, 3),
            "compute": clock.compute,
            "metrics": metrics}
    try:
        save_checkpoint(ctx.ckpt_dir, core, meta, optimizer=None if done else optimizer)
    except CheckpointError as e:
        msg = (f"{ctx.stage}: {e}. Training stopped at step {step}; last good checkpoint: "
               f"{last_ckpt or 'none'}")
        ctx.events.try_emit("error", stage=ctx.stage, step=step, message=msg,
                            last_checkpoint=last_ckpt)
        raise TrainingError(msg) from None
    if done:  # resume only matters mid-stage; a finished stage keeps weights alone
        (ctx.ckpt_dir / OPTIMIZER_FILE).unlink(missing_ok=True)
    ctx.events.emit("checkpoint", stage=ctx.stage, step=step, path=str(ctx.ckpt_dir))


# -- the loop -----------------------------------------------------------------------------------

def run_stage(model: torch.nn.Module, task: StageTask, ctx: StageContext,
              resume_meta: dict | None = None) -> dict:
    """Train ``model`` (maybe DDP-wrapped) for ``ctx.cfg.steps`` steps; return the final metrics.

    ``resume_meta``: the meta of this stage's unfinished checkpoint, whose weights ``model``
    already holds; training continues at its step with its optimizer state.
    """
    from engine.model.checkpoint import load_optimizer

    cfg, ev = ctx.cfg, ctx.events
    optimizer = make_optimizer(model, cfg)
    start, clock, metrics = 0, StageClock(), {}
    last_ckpt: str | None = str(ctx.meta["parent"]) if ctx.meta.get("parent") else None
    if resume_meta is not None:
        start = int(resume_meta["step"])
        clock = StageClock(float(resume_meta.get("elapsed_s", 0)),
                           float(resume_meta.get("side_s", 0)),
                           resume_meta.get("compute"))
        metrics = dict(resume_meta.get("metrics", {}))
        load_optimizer(ctx.ckpt_dir, optimizer)
        last_ckpt = str(ctx.ckpt_dir)
    nan_at, sleep_s = _test_hooks(ctx.stage)
    rows = cfg.batch_size // ctx.dist.world_size
    parts = accumulation_steps(rows, cfg.micro_batch)
    splits = bool(getattr(task, "ACCUMULATES", False))  # it can cut its batch into parts
    if parts > 1 and not splits:
        raise TrainingError(f"{ctx.stage} cannot cut its batch into parts: micro_batch is for "
                            "pretraining and SFT")
    ev.emit("stage_start", stage=ctx.stage, step=start, total_steps=cfg.steps,
            resumed=resume_meta is not None)
    model.train()
    t_log, tokens_since = time.perf_counter(), 0
    step = start
    try:
        while step < cfg.steps:
            if broadcast_flag(stop_requested(), ctx.dist, ctx.device):
                raise TrainingStopped
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            try:
                res, summed = _forward_backward(model, task, step, parts,
                                                poison=nan_at is not None and step == nan_at)
            except torch.OutOfMemoryError:
                raise TrainingError(_out_of_memory(ctx, step, rows // parts, last_ckpt,
                                                   splits)) from None
            loss_value = None
            if summed is not None:
                loss_value = all_reduce_mean(summed, ctx.dist, ctx.device)
                if not math.isfinite(loss_value):
                    msg = (f"{ctx.stage}: the loss became {loss_value} at step {step + 1}; "
                           f"training stopped. Last good checkpoint: {last_ckpt or 'none'} "
                           "(try a lower learning rate)")
                    ev.try_emit("error", stage=ctx.stage, step=step + 1, message=msg,
                                last_checkpoint=last_ckpt)
                    raise TrainingError(msg)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if sleep_s:
                time.sleep(sleep_s)
            step += 1
            tokens_since += res.tokens
            clock.add_compute(res)
            if step % cfg.log_every == 0 or step in (start + 1, cfg.steps):
                now = time.perf_counter()
                tok_s = tokens_since / max(now - t_log, 1e-9)
                t_log, tokens_since = now, 0
                shown = res.log_loss if res.log_loss is not None else loss_value
                mfu = None
                if ctx.flops_per_token and ctx.peak_flops:
                    mfu = round(tok_s * ctx.flops_per_token / ctx.peak_flops, 4)
                ev.emit("step", stage=ctx.stage, step=step, total_steps=cfg.steps,
                        loss=None if shown is None else round(shown, 5), lr=lr,
                        tok_s=round(tok_s, 1), mfu=mfu, elapsed_s=round(clock.elapsed(), 3),
                        **res.metrics)
            t_side = time.perf_counter()
            if step == cfg.steps and ctx.finish is not None:
                ctx.finish(unwrap(model))
            if step % cfg.eval_every == 0 or step == cfg.steps:
                metrics = {**metrics, **task.evaluate(model, step)}
                ev.emit("eval", stage=ctx.stage, step=step, **metrics)
                model.train()
            if step % cfg.sample_every == 0 or step == cfg.steps:
                got = task.sample(model, step)
                if got is not None:
                    ev.emit("sample", stage=ctx.stage, step=step, prompt=got[0], text=got[1])
                model.train()
            if step % cfg.ckpt_every == 0 and step < cfg.steps:
                _save(ctx, model, optimizer, step, False, clock, metrics, last_ckpt)
                last_ckpt = str(ctx.ckpt_dir)
            clock.side += time.perf_counter() - t_side
            t_log += time.perf_counter() - t_side  # tok/s counts training time only
    except (TrainingStopped, KeyboardInterrupt):
        # `step` counts finished updates; the weights are those after exactly that many.
        _save(ctx, model, optimizer, step, False, clock, metrics, last_ckpt)
        raise TrainingStopped(f"{ctx.stage} stopped at step {step}/{cfg.steps}; "
                              f"checkpoint saved in {ctx.ckpt_dir} (continue with --resume)")\
            from None
    summary = {**metrics, "steps": cfg.steps, "elapsed_s": round(clock.elapsed(), 3),
               "train_s": round(clock.train_s(), 3),
               "sec_per_step": round(clock.train_s() / max(cfg.steps, 1), 5),
               "compute": clock.compute}
    _save(ctx, model, optimizer, step, True, clock, summary, last_ckpt)
    ev.emit("stage_end", stage=ctx.stage, step=step, summary=summary)
    return summary
