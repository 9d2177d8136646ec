"""Gradient accumulation: a batch cut into passes of at most ``micro_batch`` rows trains what
one pass trains (1 process, and 2 DDP processes against 1), and what a user is told when a
pass does not fit in memory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from test_ddp import _free_port, _losses, _train

from engine.train.loop import accumulation_steps


def test_accumulation_steps_are_the_fewest_equal_parts_that_fit():
    assert accumulation_steps(8, None) == 1
    assert accumulation_steps(8, 8) == 1
    assert accumulation_steps(8, 16) == 1
    assert accumulation_steps(8, 4) == 2
    assert accumulation_steps(8, 3) == 4  # 3 rows do not cut 8 evenly: parts of 2
    assert accumulation_steps(12, 5) == 3
    assert accumulation_steps(7, 2) == 7  # a prime number of rows: one row a pass


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from engine.model.checkpoint import load_checkpoint

    model, _ = load_checkpoint(folder / "ckpt")
    return model.state_dict()


def _same_training(a: Path, b: Path) -> None:
    one, two = _losses(a), _losses(b)
    assert sorted(one) == sorted(two) == list(range(1, 7))
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-4, abs=1e-5), step
    assert one[6] < one[1]  # it learnt something: equal losses of an untrained model prove little
    wa, wb = _weights(a), _weights(b)
    for name, w in wa.items():
        assert torch.allclose(w, wb[name], atol=1e-4), name


@pytest.mark.parametrize("stage", ["pretrain", "sft"])
def test_passes_of_a_few_rows_train_what_one_pass_trains(stage, micro_run, tmp_path,
                                                         monkeypatch):
    from engine.model.gpt import GPT

    rows_seen: list[int] = []
    forward = GPT.forward

    def counting(self, idx, *args, **kwargs):
        if self.training:
            rows_seen.append(idx.shape[0])
        return forward(self, idx, *args, **kwargs)

    monkeypatch.setattr(GPT, "forward", counting)
    tok_path = str(micro_run / "tokenizer.json")
    _train(stage, tok_path, str(tmp_path / "one"))
    assert rows_seen == [8] * 6
    rows_seen.clear()
    _train(stage, tok_path, str(tmp_path / "parts"), micro_batch=3)  # 8 rows: 4 passes of 2
    assert rows_seen == [2] * 24
    _same_training(tmp_path / "one", tmp_path / "parts")


def _rank_main(rank: int, stage: str, tok_path: str, out: str, port: int) -> None:
    _train(stage, tok_path, out, rank, 2, port, micro_batch=2)


@pytest.mark.parametrize("stage", ["pretrain", "sft"])
def test_two_processes_accumulating_match_one_process_in_one_pass(stage, micro_run, tmp_path):
    tok_path = str(micro_run / "tokenizer.json")
    _train(stage, tok_path, str(tmp_path / "one"))
    # 8 rows over 2 processes: 4 each, in 2 passes of 2 (only the second all-reduces)
    mp.spawn(_rank_main, args=(stage, tok_path, str(tmp_path / "two"), _free_port()),
             nprocs=2, join=True)
    _same_training(tmp_path / "one", tmp_path / "two")


def test_running_out_of_memory_says_how_to_resume_with_smaller_passes(micro_run, tmp_path,
                                                                      monkeypatch):
    from engine.progress.events import read_events
    from engine.train.loop import TrainingError
    from engine.train.pretrain import PretrainTask

    def too_big(self, model, step, part=0, parts=1):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(PretrainTask, "step", too_big)
    with pytest.raises(TrainingError) as got:
        _train("pretrain", str(micro_run / "tokenizer.json"), str(tmp_path / "oom"))
    message = str(got.value)
    assert "out of memory at step 1 with 8 rows in one pass" in message
    assert "--resume --micro-batch 4" in message
    errors = [e for e in read_events(tmp_path / "oom" / "events.jsonl") if e["type"] == "error"]
    assert errors and errors[-1]["message"] == message


def test_out_of_memory_in_a_stage_that_cannot_cut_its_batch_names_other_ways(tmp_path):
    from engine.progress.events import EventWriter
    from engine.train.loop import StageContext, TrainingError, run_stage
    from engine.train.presets import StageConfig

    class Rollouts:  # like RL: no part/parts, so no --micro-batch to offer
        def step(self, model, step):
            raise torch.OutOfMemoryError("CUDA out of memory")

    cfg = StageConfig(steps=1, batch_size=8, seq_len=8, lr=1e-3)
    ctx = StageContext(stage="rl", ckpt_dir=tmp_path / "ckpt", cfg=cfg,
                       events=EventWriter(tmp_path), device=torch.device("cpu"))
    with pytest.raises(TrainingError) as got:
        run_stage(torch.nn.Linear(2, 2), Rollouts(), ctx)
    assert "cannot take fewer rows a pass" in str(got.value)
    assert "--micro-batch" not in str(got.value)


def test_micro_batch_caps_each_stage_and_never_raises_one(tmp_path):
    from engine.train.distributed import DistInfo
    from engine.train.pipeline import _with_micro_batch
    from engine.train.presets import get_preset

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    medium = get_preset("medium")  # pretraining 32 rows a pass, SFT 16
    p = _with_micro_batch(run, medium, 32, DistInfo())
    assert (p.pretrain.micro_batch, p.sft.micro_batch) == (32, 16)
    p = _with_micro_batch(run, medium, 8, DistInfo())
    assert (p.pretrain.micro_batch, p.sft.micro_batch) == (8, 8)


def test_a_stage_that_cannot_cut_its_batch_refuses_micro_batch(tmp_path):
    from engine.progress.events import EventWriter
    from engine.train.loop import StageContext, TrainingError, run_stage
    from engine.train.presets import StageConfig

    class WholeBatchOnly:  # like RL: a step samples its own rollouts
        def step(self, model, step):
            raise AssertionError("never reached")

    cfg = StageConfig(steps=1, batch_size=8, seq_len=8, lr=1e-3, micro_batch=2)
    ctx = StageContext(stage="rl", ckpt_dir=tmp_path / "ckpt", cfg=cfg,
                       events=EventWriter(tmp_path), device=torch.device("cpu"))
    with pytest.raises(TrainingError, match="micro_batch is for pretraining and SFT"):
        run_stage(torch.nn.Linear(2, 2), WholeBatchOnly(), ctx)


def test_a_compiled_pretraining_saves_and_learns_what_the_eager_one_does(micro_run, tmp_path,
                                                                         monkeypatch):
    """The GPU presets compile pretraining's model; its checkpoint must load into a plain GPT
    (no ``_orig_mod.`` names) and its losses be the eager run's. Compiled here on the CPU with
    aot_eager instead of inductor: the same wrapping and graph capture, without minutes of C++
    compiling."""
    import dataclasses

    from engine.model.checkpoint import load_checkpoint
    from engine.progress.events import read_events
    from engine.train.pipeline import train
    from engine.train.presets import get_preset

    compiled = []
    real_compile = torch.compile

    def aot_eager(model, **kwargs):
        compiled.append(type(model).__name__)
        return real_compile(model, backend="aot_eager")

    monkeypatch.setattr(torch, "compile", aot_eager)
    monkeypatch.setattr("engine.train.pipeline.COMPILE_ON", ("cuda", "cpu"))
    preset = dataclasses.replace(get_preset("micro"), compile=True)
    run = tmp_path / "compiled"
    train(run, preset_obj=preset, stages="tokenizer,pretrain", seed=0, device="cpu")
    assert compiled == ["GPT"]
    model, meta = load_checkpoint(run / "base")
    assert meta["done"] and not any("_orig_mod" in k for k in model.state_dict())

    def pretrain_losses(folder: Path) -> dict[int, float]:
        return {e["step"]: e["loss"] for e in read_events(folder / "events.jsonl")
                if e["type"] == "step" and e["stage"] == "pretrain"}

    eager, got = pretrain_losses(micro_run), pretrain_losses(run)
    assert sorted(got) == sorted(eager)
    for step, loss in eager.items():
        assert got[step] == pytest.approx(loss, rel=1e-3), step


def test_micro_batch_on_the_command_line_is_recorded_and_may_change_on_resume(tmp_path):
    import json

    from typer.testing import CliRunner

    from deepdive.cli import app

    run = tmp_path / "run"

    def micro_batches() -> tuple[int, int]:
        config = json.loads((run / "run.json").read_text())["preset_config"]
        return config["pretrain"]["micro_batch"], config["sft"]["micro_batch"]

    runner = CliRunner()
    res = runner.invoke(app, ["train", "--preset", "micro", "--run", str(run), "--device", "cpu",
                              "--stages", "tokenizer,pretrain", "--micro-batch", "4", "--quiet"])
    assert res.exit_code == 0, res.output
    assert micro_batches() == (4, 4)
    # a run that ran out of memory goes on with smaller passes
    res = runner.invoke(app, ["train", "--run", str(run), "--resume", "--micro-batch", "2",
                              "--stages", "tokenizer,pretrain", "--quiet"])
    assert res.exit_code == 0, res.output
    assert micro_batches() == (2, 2)
    res = runner.invoke(app, ["train", "--run", str(run), "--resume", "--micro-batch", "0"])
    assert res.exit_code == 2 and "micro-batch" in res.output
