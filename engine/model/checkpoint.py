"""Checkpoints: a stage folder (``<run>/base``, ``sft``, ``rl``) holds

- ``model.safetensors``      the weights (the tied embedding/head matrix stored once)
- ``optimizer.safetensors``  AdamW state, so a run resumes exactly (optional)
- ``meta.json``              config, stage, step, metrics, and the size + sha256 of each file

No pickle: tensors go to safetensors, everything else to JSON.

Atomicity: a save writes a complete new folder next to the old one (``.base.new-<pid>``), fsyncs
it, and swaps it in with two renames (old -> ``.base.old-<pid>``, new -> ``base``). A kill at
any instant leaves either the old folder or the new one complete; in the one gap between the two
renames ``base`` is missing and the loader falls back to the ``.old`` folder. Because meta.json
records each file's sha256, a model file that does not belong with its meta is caught, not loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from engine.model.gpt import GPT, GPTConfig
from engine.run import META_FILE, MODEL_FILE, MODEL_FOLDERS, OPTIMIZER_FILE, RunFolder

FORMAT = "deepdive-checkpoint/1"
TIED = ("lm_head.weight",)  # same tensor as transformer.wte.weight: saved once, re-tied on load


def _tied(key: str) -> bool:
    """A tied weight, in a GPT or in a model built around one (the reward model's backbone)."""
    return any(key == t or key.endswith("." + t) for t in TIED)


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded; the message names the file and what is wrong."""


# ---------------------------------------------------------------- saving


def save_checkpoint(stage_dir: str | Path, model: GPT, meta: dict, optimizer=None) -> None:
    stage_dir = Path(stage_dir)
    meta = dict(meta)
    meta.setdefault("stage", stage_dir.name)
    meta.setdefault("step", 0)
    meta.setdefault("metrics", {})
    meta["config"] = model.config.to_dict()
    meta["n_params"] = model.num_params()
    meta["format"] = FORMAT

    blobs = {MODEL_FILE: model_bytes(model)}
    if optimizer is not None:
        blobs[OPTIMIZER_FILE] = optimizer_bytes(optimizer)
    meta["files"] = {name: {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                     for name, b in blobs.items()}
    blobs[META_FILE] = (json.dumps(meta, indent=2, ensure_ascii=False, allow_nan=False,
                                   default=_jsonable) + "\n").encode()

    new = stage_dir.parent / f".{stage_dir.name}.new-{os.getpid()}"
    old = stage_dir.parent / f".{stage_dir.name}.old-{os.getpid()}"
    had = stage_dir.is_dir()
    try:
        stage_dir.parent.mkdir(parents=True, exist_ok=True)
        _write_folder(new, blobs, keep_from=stage_dir)
        _swap_in(new, stage_dir, old)
    except OSError as e:  # disk full, read-only, permissions: the previous checkpoint stands
        shutil.rmtree(new, ignore_errors=True)
        kept = "the previous one there is intact" if had else "nothing was written there"
        raise CheckpointError(f"{stage_dir}: could not save the checkpoint "
                              f"({e.strerror or e}); {kept}") from e
    # The old folder, and any a killed save left behind, are no longer needed.
    for stale in stage_dir.parent.glob(f".{stage_dir.name}.*-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _write_folder(new: Path, blobs: dict[str, bytes], keep_from: Path) -> None:
    """The complete new checkpoint folder, fsynced, beside the stage folder."""
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    for name, data in blobs.items():
        _write_synced(new / name, data)
    if keep_from.is_dir():  # keep files others put in the stage folder (samples, notes ...)
        for p in keep_from.iterdir():
            if p.is_file() and p.name not in (MODEL_FILE, OPTIMIZER_FILE, META_FILE):
                shutil.copy2(p, new / p.name)
    _fsync_dir(new)


def _swap_in(new: Path, stage_dir: Path, old: Path) -> None:
    """Two renames; should the second fail, the first is undone so the stage folder stays."""
    moved = False
    if stage_dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(stage_dir, old)
        moved = True
    try:
        os.replace(new, stage_dir)
    except OSError:
        if moved:
            os.replace(old, stage_dir)
        raise
    _fsync_dir(stage_dir.parent)


def model_bytes(model: GPT) -> bytes:
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()
             if not _tied(k)}
    return st_save(state, metadata={"format": FORMAT, "config": json.dumps(model.config.to_dict())})


def optimizer_bytes(optimizer) -> bytes:
    """AdamW state as flat tensors ``state.<param index>.<name>``; hyperparameters as JSON."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, state in sd["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{name}"] = value.detach().to("cpu").contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    meta = {"format": FORMAT, "param_groups": json.dumps(sd["param_groups"], default=_jsonable),
            "scalars": json.dumps(scalars, default=_jsonable),
            "optimizer": type(optimizer).__name__}
    return st_save(tensors, metadata=meta)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (Path, tuple)):
        return str(value) if isinstance(value, Path) else list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ---------------------------------------------------------------- loading


def find_checkpoint_dir(stage_dir: str | Path) -> Path | None:
    """The folder to read: the stage folder, or the ``.old`` copy a save left mid-swap; None
    where there is neither (the stage was never saved)."""
    stage_dir = Path(stage_dir)
    if stage_dir.is_dir():
        return stage_dir
    olds = sorted(stage_dir.parent.glob(f".{stage_dir.name}.old-*"),
                  key=lambda p: p.stat().st_mtime)
    return olds[-1] if olds else None


def checkpoint_dir(stage_dir: str | Path) -> Path:
    """find_checkpoint_dir, or a CheckpointError where there is no checkpoint."""
    folder = find_checkpoint_dir(stage_dir)
    if folder is None:
        raise CheckpointError(f"{stage_dir}: no checkpoint here (folder missing)")
    return folder


def read_meta(stage_dir: str | Path) -> dict:
    path = checkpoint_dir(stage_dir) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (every checkpoint needs its meta.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON, truncated or corrupt ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{path}: not a deepdive checkpoint meta (expected format {FORMAT})")
    if problem := _meta_problem(meta):
        raise CheckpointError(f"{path}: {problem}")
    return meta


def _meta_problem(meta: dict) -> str | None:
    """What in a meta.json has the wrong type (the loaders and --resume read these fields)."""
    for key in ("step", "total_steps"):
        if key in meta and (not isinstance(meta[key], int) or isinstance(meta[key], bool)
                            or meta[key] < 0):
            return f"{key!r} must be a whole number >= 0, not {meta[key]!r}"
    if not isinstance(meta.get("metrics", {}), dict):
        return "'metrics' must be an object"
    compute = meta.get("compute")
    if compute is not None and (not isinstance(compute, int | float) or isinstance(compute, bool)
                                or compute < 0):
        return f"'compute' must be a number >= 0 or null, not {compute!r}"
    files = meta.get("files", {})
    if not isinstance(files, dict):
        return "'files' must be an object of {name: {bytes, sha256}}"
    for name, want in files.items():
        if not (isinstance(want, dict) and isinstance(want.get("bytes"), int)
                and isinstance(want.get("sha256"), str)):
            return f"files[{name!r}] must hold a whole 'bytes' and a 'sha256' string"
    return None


def _load_file(folder: Path, name: str, meta: dict) -> tuple[dict, dict]:
    """(tensors, header metadata) of one safetensors file of a checkpoint, checked against the
    size and sha256 meta.json recorded; anything wrong is a CheckpointError naming the file."""
    path = folder / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    want = meta.get("files", {}).get(name)
    if want is None:
        raise CheckpointError(f"{folder / META_FILE}: does not describe {name}")
    try:
        tensors = st_load(data)
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + n]).get("__metadata__") or {}
    except (SafetensorError, ValueError, RuntimeError, AttributeError) as e:
        if len(data) < want["bytes"]:
            raise CheckpointError(
                f"{path}: truncated ({len(data)} of {want['bytes']} bytes)") from None
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not written by deepdive (a foreign safetensors file)")
    if len(data) != want["bytes"] or hashlib.sha256(data).hexdigest() != want["sha256"]:
        raise CheckpointError(f"{path}: contents do not match the size/sha256 in meta.json "
                              "(corrupt, or not the file this meta.json was saved with)")
    return tensors, header


def load_checkpoint(stage_dir: str | Path, device: str | torch.device = "cpu",
                    build: Callable[[GPTConfig], torch.nn.Module] = GPT) -> tuple[GPT, dict]:
    """The model saved in a stage folder and its meta. ``build`` makes the empty module from
    the saved config (a GPT; the reward model wraps one)."""
    folder = checkpoint_dir(stage_dir)
    meta = read_meta(folder)
    try:
        config = GPTConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / META_FILE}: bad config ({e})") from None
    path = folder / MODEL_FILE
    state, header = _load_file(folder, MODEL_FILE, meta)
    saved = _saved_config(header)
    if saved is None:
        raise CheckpointError(f"{path}: holds no model config (deepdive writes one in every "
                              "model file); not a file this meta.json was saved with")
    if saved != config.to_dict():
        # checked before GPT(config): an edited n_layer of a million would allocate for it
        raise CheckpointError(f"{folder / META_FILE}: its config differs from the one saved "
                              f"inside {MODEL_FILE} ({saved})")
    model = build(config)
    problem = weights_mismatch(model, state)
    if problem:
        raise CheckpointError(f"{path}: weights do not fit the config in meta.json ({problem})")
    model.load_state_dict(state, strict=False)  # lm_head.weight is wte.weight: tied already
    return model.to(device), meta


def _saved_config(header: dict) -> dict | None:
    """The config model.safetensors was written with (its header; the file's sha256 is in
    meta.json), normalised like GPTConfig.to_dict; None where the header has none."""
    try:
        return GPTConfig.from_dict(json.loads(header["config"])).to_dict()
    except (KeyError, TypeError, ValueError):
        return None


def weights_mismatch(model: GPT, state: dict[str, torch.Tensor]) -> str | None:
    """Why ``state`` cannot be loaded into ``model`` (names or shapes; the tied head is not
    expected), or None when it fits."""
    expected = {k: v.shape for k, v in model.state_dict().items() if not _tied(k)}
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        return f"missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}"
    for k, shape in expected.items():
        if state[k].shape != shape:
            return f"{k} has shape {tuple(state[k].shape)}, the config needs {tuple(shape)}"
    return None


def load_optimizer(stage_dir: str | Path, optimizer) -> bool:
    """Restore AdamW state saved with the checkpoint; False if none was saved."""
    folder = checkpoint_dir(stage_dir)
    if not (folder / OPTIMIZER_FILE).is_file():
        return False
    meta = read_meta(folder)
    path = folder / OPTIMIZER_FILE
    tensors, header = _load_file(folder, OPTIMIZER_FILE, meta)
    try:
        groups = json.loads(header["param_groups"])
        scalars = json.loads(header.get("scalars", "{}"))
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: optimizer hyperparameters missing or corrupt") from None
    try:
        state = _optimizer_state(tensors, scalars)
        for group in groups:
            if "betas" in group:
                group["betas"] = tuple(group["betas"])
    except (ValueError, TypeError, AttributeError):  # a file made by hand, hash and all
        raise CheckpointError(f"{path}: optimizer state is not laid out as deepdive saves "
                              "it") from None
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: does not fit this optimizer ({e})") from None
    return True


def _optimizer_state(tensors: dict, scalars: dict) -> dict[int, dict]:
    """AdamW's per-parameter state from ``state.<index>.<name>`` tensors and
    ``<index>.<name>`` scalars (optimizer_bytes' layout); ValueError on any other key."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        prefix, index, name = key.split(".", 2)
        if prefix != "state":
            raise ValueError(key)
        state.setdefault(int(index), {})[name] = value
    for key, value in scalars.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return state


def load_run_model(run: str | Path, stage: str = "base", device: str | torch.device = "cpu"):
    """(model, tokenizer, meta) of one stage of a run given by name or path."""
    from engine.run import list_runs, resolve_run

    run_dir = resolve_run(run)
    if not run_dir.is_dir():
        names = [r.name for r in list_runs()]
        raise CheckpointError(f"{run_dir}: no such run (runs here: {', '.join(names) or 'none'})")
    if find_checkpoint_dir(run_dir / stage) is None:
        have = [s for s in MODEL_FOLDERS if (run_dir / s).is_dir()]
        raise CheckpointError(f"{run_dir / stage}: run has no {stage!r} model "
                              f"(stages: {', '.join(have) or 'none'})")
    tok_path = RunFolder(run_dir).tokenizer
    if not tok_path.is_file():
        raise CheckpointError(f"{tok_path}: missing (the run's tokenizer)")
    from engine.tokens.tokenizer import Tokenizer

    try:
        tok = Tokenizer.load(tok_path)
    except (ValueError, KeyError, OSError) as e:
        raise CheckpointError(f"{tok_path}: cannot load tokenizer ({e})") from None
    model, meta = load_checkpoint(run_dir / stage, device)
    if tok.n_vocab > model.config.vocab_size:
        raise CheckpointError(f"{tok_path}: {tok.n_vocab} tokens, but the model in "
                              f"{run_dir / stage} knows only {model.config.vocab_size}")
    return model, tok, meta
