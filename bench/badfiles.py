"""Corrupted run files against the loaders: every one must be refused with an error that names
the file, none may load silently, none may crash with another exception.

A small valid run (a BPE tokenizer, a tiny GPT checkpoint with its optimizer state, run.json)
is made in a temporary folder; each case copies it, damages one file (truncations, byte flips in
the safetensors header and body, a pickle renamed to model.safetensors, JSON with wrong types,
deleted files, impossible tokenizer merges ...) and loads it the way the app and the CLI do.

Usage: python bench/badfiles.py [--seed 0]
The last line is one JSON object: corrupt_files_tried, corrupt_files_rejected,
corrupt_files_loaded_silently (names), crashes, crash_examples.
"""

from __future__ import annotations

import argparse
import base64
import json
import pickle  # noqa: S403 - only to WRITE a hostile file that the loaders must refuse
import random
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

Damage = Callable[[Path], None]  # damages a copy of the run in place


class Hostile:
    """Unpickling this would create ``marker``: proof that a loader executed file contents."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def make_run(folder: Path, seed: int) -> Path:
    """A valid run: tokenizer.json, base/ (model + optimizer + meta), run.json."""
    import torch

    from engine.data.world import build_world, pretrain_documents
    from engine.model.checkpoint import save_checkpoint
    from engine.model.gpt import GPT, GPTConfig
    from engine.run import RunFolder
    from engine.tokens.tokenizer import train_bpe

    run = folder / "good"
    docs = pretrain_documents(build_world(seed), n_stories=5, n_skills=10)
    tok = train_bpe(docs, 300)
    RunFolder(run).write_info({"preset": "bench", "seed": seed})
    tok.save(run / "tokenizer.json")
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=tok.n_vocab, block_size=32, n_layer=1, n_head=2, n_embd=16))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.zeros(1, 4, dtype=torch.long))[0].sum().backward()
    opt.step()
    save_checkpoint(run / "base", model, {"step": 1, "done": False}, optimizer=opt)
    return run


# -- the damage ---------------------------------------------------------------------------------

def truncate(name: str, keep: float | int) -> Damage:
    def damage(run: Path) -> None:
        path = run / name
        data = path.read_bytes()
        n = keep if isinstance(keep, int) else int(len(data) * keep)
        path.write_bytes(data[:n])
    return damage


def flip(name: str, where: str, rng: random.Random) -> Damage:
    """One byte changed in the safetensors header (JSON) or in the tensor bytes."""
    def damage(run: Path) -> None:
        path = run / name
        data = bytearray(path.read_bytes())
        header_end = 8 + int.from_bytes(data[:8], "little")
        at = rng.randrange(8, header_end) if where == "header" else rng.randrange(header_end,
                                                                                   len(data))
        data[at] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
    return damage


def replace_with(name: str, data: bytes) -> Damage:
    def damage(run: Path) -> None:
        (run / name).write_bytes(data)
    return damage


def delete(name: str) -> Damage:
    def damage(run: Path) -> None:
        (run / name).unlink()
    return damage


def forge(name: str, tensors: dict, metadata: dict) -> Damage:
    """A safetensors file made by hand, with meta.json's size and sha256 updated to match it:
    the integrity check passes, so the loader's own reading must refuse what is inside."""
    def damage(run: Path) -> None:
        import hashlib

        from safetensors.torch import save as st_save

        data = st_save(tensors, metadata=metadata)
        (run / name).write_bytes(data)
        meta_path = run / Path(name).parent / "meta.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["files"][Path(name).name] = {"bytes": len(data),
                                          "sha256": hashlib.sha256(data).hexdigest()}
        meta_path.write_text(json.dumps(meta), encoding="utf-8")
    return damage


def edit_json(name: str, change: Callable[[dict], object]) -> Damage:
    """Load the JSON, let ``change`` alter it (or return a whole new value), write it back."""
    def damage(run: Path) -> None:
        path = run / name
        value = json.loads(path.read_text(encoding="utf-8"))
        new = change(value)
        path.write_text(json.dumps(value if new is None else new), encoding="utf-8")
    return damage


def _set(path: tuple, value) -> Callable[[dict], None]:
    def change(d: dict) -> None:
        for key in path[:-1]:
            d = d[key]
        d[path[-1]] = value
    return change


def _drop_single_byte(d: dict) -> None:
    d["ranks"] = [r for r in d["ranks"] if len(base64.b64decode(r[0])) != 1 or r[1] != 65]


def _orphan_merge(d: dict) -> None:
    """A token whose two halves are not in the vocabulary: no merge can ever make it."""
    d["ranks"].append([base64.b64encode(b"\x01\x02zq\x7f").decode(), len(d["ranks"])])


def _duplicate_rank(d: dict) -> None:
    d["ranks"][-1][1] = d["ranks"][-2][1]


def cases(run: Path, rng: random.Random, marker: Path) -> list[tuple[str, Damage, str]]:
    """(name, damage, which loader) for every corruption tried."""
    import torch

    from engine.model.checkpoint import FORMAT

    model, opt, meta = "base/model.safetensors", "base/optimizer.safetensors", "base/meta.json"
    size = (run / model).stat().st_size
    hostile = pickle.dumps(Hostile(marker))
    out: list[tuple[str, Damage, str]] = []
    for keep in (0, 4, 8, 100, 0.5, size - 1):
        out.append((f"model truncated to {keep}", truncate(model, keep), "model"))
    for i in range(6):
        out.append((f"model header byte flip {i}", flip(model, "header", rng), "model"))
        out.append((f"model tensor byte flip {i}", flip(model, "body", rng), "model"))
    out += [
        ("pickle renamed to model.safetensors", replace_with(model, hostile), "model"),
        ("model file empty", replace_with(model, b""), "model"),
        ("model file deleted", delete(model), "model"),
        ("optimizer truncated", truncate(opt, 0.5), "optimizer"),
        ("optimizer byte flip", flip(opt, "body", rng), "optimizer"),
        ("pickle renamed to optimizer.safetensors", replace_with(opt, hostile), "optimizer"),
        ("optimizer forged: odd keys, hash updated",
         forge(opt, {"evil": torch.zeros(1)}, {"format": FORMAT, "param_groups": "[]"}),
         "optimizer"),
        ("optimizer forged: groups not a list, hash updated",
         forge(opt, {}, {"format": FORMAT, "param_groups": "7", "scalars": "[]"}), "optimizer"),
        ("meta.json not JSON", replace_with(meta, b"{\"step\": 1,"), "model"),
        ("meta.json a list", replace_with(meta, b"[1, 2]"), "model"),
        ("meta.json deleted", delete(meta), "model"),
        ("meta config a list", edit_json(meta, _set(("config",), [])), "model"),
        ("meta config n_layer -1", edit_json(meta, _set(("config", "n_layer"), -1)), "model"),
        ("meta config n_embd text", edit_json(meta, _set(("config", "n_embd"), "big")), "model"),
        ("meta config n_head 0", edit_json(meta, _set(("config", "n_head"), 0)), "model"),
        ("meta config n_layer a million",
         edit_json(meta, _set(("config", "n_layer"), 1_000_000)), "model"),
        ("meta config block_size edited",
         edit_json(meta, _set(("config", "block_size"), 4096)), "model"),
        ("meta files a number", edit_json(meta, _set(("files",), 3)), "model"),
        ("meta file entry text", edit_json(meta, _set(("files", "model.safetensors"), "x")),
         "model"),
        ("meta file bytes text", edit_json(meta, _set(("files", "model.safetensors", "bytes"),
                                                      "many")), "model"),
        ("meta step text", edit_json(meta, _set(("step",), "ten")), "meta"),
        ("meta compute text", edit_json(meta, _set(("compute",), "lots")), "meta"),
        ("model forged without its config, hash updated",
         forge(model, {"transformer.wte.weight": torch.zeros(4, 4)}, {"format": FORMAT}),
         "model"),
        ("meta vocab smaller than tokenizer",
         edit_json(meta, _set(("config", "vocab_size"), 10)), "model"),
        ("tokenizer.json truncated", truncate("tokenizer.json", 0.5), "model"),
        ("tokenizer.json a number", replace_with("tokenizer.json", b"42"), "model"),
        ("tokenizer missing a single byte", edit_json("tokenizer.json", _drop_single_byte),
         "model"),
        ("tokenizer orphan merge", edit_json("tokenizer.json", _orphan_merge), "model"),
        ("tokenizer duplicate rank", edit_json("tokenizer.json", _duplicate_rank), "model"),
        ("tokenizer ranks text", edit_json("tokenizer.json", _set(("ranks",), "abc")), "model"),
        ("tokenizer specials a list",
         edit_json("tokenizer.json", _set(("special_tokens",), [1])), "model"),
        ("tokenizer.json deleted", delete("tokenizer.json"), "model"),
        ("run.json not JSON", replace_with("run.json", b"{"), "run"),
        ("run.json a list", replace_with("run.json", b"[]"), "run"),
        ("run.json seed text", edit_json("run.json", _set(("seed",), "zero")), "run"),
    ]
    return out


# -- loading, as the app and the CLI do ---------------------------------------------------------

def load(run: Path, which: str) -> None:
    from engine.api import load_run_model

    if which == "model":
        load_run_model(run, "base")
    elif which == "optimizer":
        import torch

        from engine.model.checkpoint import load_checkpoint, load_optimizer

        model, _ = load_checkpoint(run / "base")
        load_optimizer(run / "base", torch.optim.AdamW(model.parameters(), lr=1e-3))
    elif which == "meta":
        from engine.model.checkpoint import read_meta
        from engine.train.loop import unfinished_meta

        read_meta(run / "base")
        unfinished_meta(run / "base", "pretrain")  # what --resume reads: the step
        resume_step(run)
    else:
        from engine.api import RunFolder, list_runs

        RunFolder(run).read_info()
        list_runs(run.parent)  # the run pickers read every run.json under the root


def resume_step(run: Path) -> int:
    from engine.model.checkpoint import read_meta

    return int(read_meta(run / "base")["step"])


def run_corrupt_files(seed: int) -> dict:
    """Every corruption against its loader; see the module docstring for the counts."""
    from engine.api import CheckpointError, RunFileError, TokenizerFileError

    clean = (CheckpointError, RunFileError, TokenizerFileError)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="deepdive-badfiles-") as tmp:
        folder = Path(tmp)
        good = make_run(folder, seed)
        marker = folder / "EXECUTED"
        tried = rejected = crashes = 0
        silent: list[str] = []
        crash_examples: list[str] = []
        for name, damage, which in cases(good, rng, marker):
            run = folder / "case"
            shutil.rmtree(run, ignore_errors=True)
            shutil.copytree(good, run)
            damage(run)
            tried += 1
            try:
                load(run, which)
            except clean as e:
                named = any(part in str(e) for part in ("model.safetensors", "meta.json",
                                                        "optimizer.safetensors",
                                                        "tokenizer.json", "run.json"))
                rejected += named
                if not named:
                    crash_examples.append(f"{name}: error does not name the file: {e}")
            except Exception as e:  # noqa: BLE001 - any other exception is the finding
                crashes += 1
                crash_examples.append(f"{name}: {type(e).__name__}: {e}"[:200])
            else:
                silent.append(name)
            if marker.exists():
                crashes += 1
                crash_examples.append(f"{name}: file contents were EXECUTED")
                marker.unlink()
    return {"corrupt_files_tried": tried, "corrupt_files_rejected": rejected,
            "corrupt_files_loaded_silently": silent, "crashes": crashes,
            "crash_examples": crash_examples[:10]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    print(json.dumps(run_corrupt_files(ap.parse_args().seed)))


if __name__ == "__main__":
    main()
