"""Shared test fixtures.

``micro_run``: a finished run of the ``micro`` preset (every stage, report.json included), made
once per test session by the real trainer in a temporary folder. UI and CLI tests open it.

``write_hf_gpt2``: writes a tiny random GPT-2 as a Hugging Face folder (what
``deepdive import gpt2`` reads); the import and the --from tests start from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def micro_run(tmp_path_factory) -> Path:
    from engine.train.pipeline import train

    run_dir = tmp_path_factory.mktemp("runs") / "micro"
    train(run_dir, preset="micro", seed=0, device="cpu")
    return run_dir


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (from openai/gpt-2 encoder.py)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


HF_MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a")]


@pytest.fixture(scope="session")
def write_hf_gpt2():
    """write(folder, seed=0, n_positions=64) -> the transformers model it saved: a tiny random
    GPT-2 in exactly the format the Hub serves (save_pretrained, safetensors)."""
    transformers = pytest.importorskip("transformers")
    import torch

    def write(folder: Path, seed: int = 0, n_positions: int = 64):
        b2u = bytes_to_unicode()
        vocab = {b2u[b]: i for i, b in enumerate(sorted(b2u))}
        for a, b in HF_MERGES:
            vocab[a + b] = len(vocab)
        vocab["<|endoftext|>"] = len(vocab)
        torch.manual_seed(seed)
        cfg = transformers.GPT2Config(vocab_size=len(vocab), n_positions=n_positions, n_embd=32,
                                      n_layer=2, n_head=4, bos_token_id=len(vocab) - 1,
                                      eos_token_id=len(vocab) - 1)
        hf = transformers.GPT2LMHeadModel(cfg).eval()
        hf.save_pretrained(folder, safe_serialization=True)
        (folder / "vocab.json").write_text(json.dumps(vocab))
        (folder / "merges.txt").write_text(
            "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in HF_MERGES))
        return hf

    return write


@pytest.fixture
def anyio_backend():
    return "asyncio"  # the async UI tests (Textual's Pilot) run on asyncio


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """An empty checkpoints folder, made the runs root through DEEPDIVE_CHECKPOINTS."""
    root = tmp_path / "checkpoints"
    root.mkdir()
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(root))
    return root


@pytest.fixture(autouse=True)
def _writable_exports(monkeypatch):
    """A read-only app marks its process read-only (tui/exports.py); each test starts
    writable and any such mark is undone after it."""
    monkeypatch.setenv("DEEPDIVE_READ_ONLY", "")
