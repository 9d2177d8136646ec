"""Fine-tune another run's base model: ``deepdive train --run NEW --from SOURCE --stages sft,rl``.

SOURCE is any run with a ``base/`` model and a ``tokenizer.json``: typically one made by
``deepdive import gpt2``, whose tokenizer has no chat tokens. The new run is an ordinary run
folder (engine/run.py), so the app, ``--resume`` and the report card treat it like any other:

- ``tokenizer.json``: SOURCE's, plus the chat's special tokens it lacks (engine/tokens/chat.py),
  numbered after every id SOURCE's tokenizer and model use. Typed text still never becomes them.
- ``base/``: SOURCE's base weights with an embedding row for each new token (``grow_vocab``),
  marked as a finished pretrain stage. It is a copy, not a link: every run has a ``base/`` the
  app can show, and the new run stays whole if SOURCE is moved or deleted.
- ``run.json``: as for any run, plus ``from`` (SOURCE's path, the sha256 of its base weights,
  the tokens added), written with the rest so a resume always knows where the run began.
- ``sft/``, ``rl/``, ...: the pipeline's own stages, on the world's rows and a user's files.

The preset keeps the named one's schedule (``derived_preset`` says what changes and why).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from engine.model.checkpoint import load_run_model, save_checkpoint
from engine.model.checkpoint import read_meta as read_checkpoint_meta
from engine.model.gpt import GPT, GPTConfig
from engine.run import (
    MODEL_FILE,
    PRETRAIN,
    STAGE_NAMES,
    TOKENIZER,
    TOKENIZER_FILE,
    RunFolder,
    resolve_run,
)
from engine.tokens.chat import SPECIAL_TOKENS
from engine.tokens.tokenizer import Tokenizer, with_special_tokens
from engine.train import distributed as D
from engine.train.loop import finished_meta
from engine.train.presets import Preset, get_preset

# What a run started from another's base model can train: everything after pretraining.
OWN_STAGES = (TOKENIZER.name, PRETRAIN.name)
AFTER_BASE = tuple(s for s in STAGE_NAMES if s not in OWN_STAGES)
# Fine-tuning weights someone else pretrained (at a scale we do not know) at our own
# from-scratch learning rates would wash out what they learned in a few steps; a tenth keeps
# GPT-2 small's SFT near the usual 1e-4 (tiny) and RL well below it.
LR_SCALE = 0.1
# New tokens whose row starts as an existing token's: GPT-2 read <|endoftext|> before every
# document, so the chat's <|bos|> begins with the meaning "a new text starts here".
SEED_ROWS = {"<|bos|>": "<|endoftext|>"}


class FromRunError(ValueError):
    """A --from request that cannot be honoured; the message says what to do instead."""


@dataclass
class FromRun:
    """A run that starts from SOURCE's base model: what to train, with what, and the record."""

    source: Path
    stages: list[str]
    record: dict  # run.json's "from"
    preset: Preset | None  # None: the run exists and trains with the preset it recorded

    def prepare(self, run_dir: Path, dist: D.DistInfo) -> None:
        """Write tokenizer.json and base/ unless a finished base/ from SOURCE is there."""
        done = finished_meta(RunFolder(run_dir).model_dir(PRETRAIN.name), PRETRAIN.name)
        if done is None or done.get("from") != self.record:
            if dist.is_main:
                self._write(RunFolder(run_dir))
        D.barrier(dist)

    def _write(self, run: RunFolder) -> None:
        # tokenizer first: base/ is what marks the run as prepared, so a kill between the two
        # leaves a run that prepares again on --resume
        model, tok, meta = load_run_model(self.source, PRETRAIN.folder)
        if meta["files"][MODEL_FILE]["sha256"] != self.record["base_sha256"]:
            raise FromRunError(f"{self.source}/{PRETRAIN.folder} changed since {run.path} "
                               "began (restore it, or start another --run)")
        tok = chat_tokenizer(tok, model.config.vocab_size, run.name)
        tok.save(run.tokenizer)
        save_checkpoint(run.model_dir(PRETRAIN.name), grow_vocab(model, tok),
                        {"stage": PRETRAIN.folder, "train_stage": PRETRAIN.name, "done": True,
                         "step": meta.get("step", 0), "metrics": {}, "tokenizer": TOKENIZER_FILE,
                         "from": self.record})


def plan_from_run(run_dir: Path, source: str | Path | None, preset: str | None,
                  stages: list[str] | None) -> FromRun | None:
    """What ``train`` does for a run that starts (or started) from SOURCE; None for an
    ordinary run. ``stages``: those asked for (None: every stage after pretraining)."""
    recorded = RunFolder(run_dir).read_info()
    if source is None and "from" not in recorded:
        if recorded.get("kind") == "import":
            raise FromRunError(f"{run_dir} is an imported model, not a run to train in place; "
                               f"fine-tune it into a new run: --run NEW --from {run_dir}")
        return None
    if stages is not None and set(stages) & set(OWN_STAGES):
        raise FromRunError(f"a run started with --from takes its tokenizer and pretraining from "
                           f"its source; choose stages from {','.join(AFTER_BASE)}")
    stages = stages or list(AFTER_BASE)
    src, meta = source_run(source, run_dir) if source is not None else (None, {})
    if recorded:
        return _recorded_plan(run_dir, recorded, src, stages)
    old = int(meta["config"]["vocab_size"])
    tok = chat_tokenizer(Tokenizer.load(RunFolder(src).tokenizer), old, Path(run_dir).name)
    record = {"run": str(src.resolve()), "base_sha256": meta["files"][MODEL_FILE]["sha256"],
              "added_tokens": {s: tok.specials[s] for s in SPECIAL_TOKENS
                               if tok.specials[s] >= old}}
    base = get_preset(preset or "tiny")
    return FromRun(src, stages, record, derived_preset(base, meta["config"], tok.n_vocab, src))


def _recorded_plan(run_dir: Path, recorded: dict, source: Path | None,
                   stages: list[str]) -> FromRun:
    """An existing run folder: it must have started from SOURCE (where one is named)."""
    began = recorded.get("from")
    if began is None:
        raise FromRunError(f"{run_dir} already holds another run (one not started with --from); "
                           "pick another --run")
    if not (isinstance(began, dict) and isinstance(began.get("run"), str)
            and isinstance(began.get("base_sha256"), str)):
        raise FromRunError(f"{RunFolder(run_dir).run_json}: 'from' must name the source 'run' "
                           "and its 'base_sha256'")
    if source is not None and str(source.resolve()) != began["run"]:
        raise FromRunError(f"{run_dir} started from {began['run']}, not {source}; "
                           "pick another --run")
    return FromRun(Path(began["run"]), stages, began, None)


def source_run(source: str | Path, run_dir: Path) -> tuple[Path, dict]:
    """SOURCE's folder and its base/meta.json, refused (FromRunError) unless it is a run with
    a finished base model whose weights meta.json vouches for (their sha256)."""
    src = resolve_run(source)
    folder = RunFolder(src)
    if not src.is_dir():
        raise FromRunError(f"--from {source}: no such run ({src} does not exist)")
    if src.resolve() == Path(run_dir).resolve():
        raise FromRunError(f"--from {source} is the run being written; pick another --run")
    if not (folder.has_model(PRETRAIN.name) and folder.tokenizer.is_file()):
        raise FromRunError(f"--from {source}: {src} is not a run with a base model (it needs "
                           f"{PRETRAIN.folder}/{MODEL_FILE} and {folder.tokenizer.name}); "
                           "make one with `deepdive import gpt2` or `deepdive train`")
    meta = read_checkpoint_meta(folder.model_dir(PRETRAIN.name))
    if meta.get("train_stage") == PRETRAIN.name and not meta.get("done"):
        raise FromRunError(f"--from {source}: its pretraining is unfinished (step "
                           f"{meta.get('step')}); finish it with --resume first")
    if MODEL_FILE not in meta.get("files", {}):
        raise FromRunError(f"--from {source}: {PRETRAIN.folder}/meta.json records no sha256 "
                           f"of {MODEL_FILE}")
    return src, meta


def chat_tokenizer(tok: Tokenizer, model_vocab: int, run_name: str) -> Tokenizer:
    """SOURCE's tokenizer with the chat's special tokens, after every id it or its model use
    (a model may have more rows than its tokenizer has ids: GPT-2s padded to a round size)."""
    return with_special_tokens(tok, SPECIAL_TOKENS, max(tok.n_vocab, model_vocab),
                               name=f"run:{run_name}")


def grow_vocab(model: GPT, tok: Tokenizer) -> GPT:
    """``model`` with an embedding row for every id of ``tok``; old rows kept exactly.

    New rows are the mean of the old ones. Why: the embedding is also the output head (GPT
    ties them), so a new token's logit is then the mean of the old tokens' logits, and its
    probability (by Jensen) at most the average token's: the base model's next-token
    distribution stays nearly as it was, where random rows of the wrong scale could take
    over from the first step. As an input, the mean is the centre of what the blocks have seen.
    """
    old, new = model.config.vocab_size, tok.n_vocab
    if new <= old:
        return model
    wte = model.transformer.wte.weight.detach()
    rows = wte.mean(0, keepdim=True).repeat(new - old, 1)
    for name, like in SEED_ROWS.items():
        if tok.specials.get(name, -1) >= old and tok.specials.get(like, old) < old:
            rows[tok.specials[name] - old] = wte[tok.specials[like]]
    grown = GPT(GPTConfig(**{**model.config.to_dict(), "vocab_size": new}))
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    state["transformer.wte.weight"] = torch.cat([wte, rows])
    grown.load_state_dict(state, strict=False)  # lm_head.weight is wte.weight: tied by GPT()
    return grown


def derived_preset(base: Preset, config: dict, vocab_size: int, source: Path) -> Preset:
    """``base``'s schedule for SOURCE's model: its dims, LR_SCALE x the learning rates, windows
    no longer than its context; no knowledge probe, no untrained name rows (so copied names
    stay masked, engine/train/sft.py) and no merge with the base. The first two measure and
    protect what *our* pretraining stored about the world, which SOURCE never read: the probe
    would find every fact unknown and SFT would teach refusals for them all; the merge's share
    was chosen for our world's models, not SOURCE's."""
    model = {k: v for k, v in config.items() if k != "vocab_size"}

    def tuned(cfg):
        return replace(cfg, lr=cfg.lr * LR_SCALE, seq_len=min(cfg.seq_len, config["block_size"]))

    return replace(base, vocab_size=vocab_size, model=model, sft=tuned(base.sft),
                   rl=tuned(base.rl), probe_samples=0, sft_untrained_names=False,
                   sft_learn_copies=False, sft_merge=1.0,
                   notes={**base.notes, "from": f"{base.name}'s schedule at {LR_SCALE}x its "
                          f"learning rates, for the model of {source.name}"})
