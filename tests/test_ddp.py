"""Data parallel on CPU: 2 processes (gloo) train exactly what 1 process trains on the same
global batch: the same losses and, after a few steps, the same weights."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from engine.progress.events import read_events


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(stage: str, tok_path: str, out: str, rank: int = 0, world: int = 1,
           port: int = 0, micro_batch: int | None = None) -> None:
    """A few steps of ``stage`` with the shared loop, as rank ``rank`` of ``world`` processes."""
    from engine.data.world import build_world
    from engine.model.gpt import GPT, GPTConfig
    from engine.progress.events import EventWriter
    from engine.tokens.tokenizer import Tokenizer
    from engine.train import distributed as D
    from engine.train.loop import StageContext, run_stage
    from engine.train.presets import StageConfig

    torch.set_num_threads(1)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                          WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    info, dev = D.setup("cpu")
    tok = Tokenizer.load(tok_path)
    cfg = StageConfig(steps=6, batch_size=8, seq_len=48, lr=3e-3, warmup=2, log_every=1,
                      eval_every=100, sample_every=100, ckpt_every=100,
                      micro_batch=micro_batch)
    world_data = build_world(0)
    if stage == "pretrain":
        from engine.data.world import pretrain_documents
        from engine.train.pretrain import PretrainTask

        task = PretrainTask(tok, pretrain_documents(world_data), cfg, 0, 0.05, dev, info)
    else:
        from engine.data.world import sft_conversations
        from engine.train.sft import SftTask

        task = SftTask(tok, sft_conversations(world_data), cfg, 0, 0.05, dev, info)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.n_vocab, block_size=64, n_layer=1, n_head=2, n_embd=32))
    ctx = StageContext(stage=stage, ckpt_dir=Path(out) / "ckpt", cfg=cfg, device=dev, dist=info,
                       events=EventWriter(out, enabled=info.is_main))
    run_stage(D.wrap(model, info, dev), task, ctx)
    D.teardown()


def _rank_main(rank: int, stage: str, tok_path: str, out: str, port: int) -> None:
    _train(stage, tok_path, out, rank, 2, port)


def _losses(out: Path) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in read_events(out / "events.jsonl") if e["type"] == "step"}


@pytest.mark.parametrize("stage", ["pretrain", "sft"])
def test_two_processes_match_one_with_the_same_global_batch(stage, micro_run, tmp_path):
    from engine.model.checkpoint import load_checkpoint

    tok_path = str(micro_run / "tokenizer.json")
    single, double = tmp_path / "one", tmp_path / "two"
    _train(stage, tok_path, str(single))
    mp.spawn(_rank_main, args=(stage, tok_path, str(double), _free_port()), nprocs=2, join=True)
    one, two = _losses(single), _losses(double)
    assert sorted(one) == sorted(two) == list(range(1, 7))
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-4, abs=1e-5), step
    assert one[6] < one[1]
    m1, _ = load_checkpoint(single / "ckpt")
    m2, _ = load_checkpoint(double / "ckpt")
    for (name, a), b in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-4), name
