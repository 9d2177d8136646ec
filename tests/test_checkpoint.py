"""Checkpoints: bit-exact round trips (model + optimizer), atomic saves, clear errors."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from engine.model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_optimizer,
    save_checkpoint,
)
from engine.model.gpt import GPT, GPTConfig


def tiny(arch="deepdive", seed=0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=2, n_embd=16, arch=arch))


def train_steps(model, opt, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        idx = torch.randint(0, 50, (4, 16), generator=g)
        _, loss = model(idx, idx)
        opt.zero_grad()
        loss.backward()
        opt.step()


def make_opt(model):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                              {"params": rest, "weight_decay": 0.0}], lr=1e-2, betas=(0.9, 0.95))


@pytest.mark.parametrize("arch", ["deepdive", "gpt2"])
def test_round_trip_bit_exact_and_tied(tmp_path, arch):
    model = tiny(arch)
    save_checkpoint(tmp_path / "base", model, {"step": 7, "metrics": {"loss": 1.5}})
    loaded, meta = load_checkpoint(tmp_path / "base")
    assert meta["step"] == 7 and meta["stage"] == "base" and meta["metrics"] == {"loss": 1.5}
    assert meta["config"] == model.config.to_dict() and meta["n_params"] == model.num_params()
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert loaded.lm_head.weight is loaded.transformer.wte.weight  # tying survives the trip
    idx = torch.randint(0, 50, (1, 10))
    assert torch.equal(model.eval()(idx)[0], loaded.eval()(idx)[0])


def test_optimizer_round_trip_gives_identical_next_step(tmp_path):
    model = tiny()
    opt = make_opt(model)
    train_steps(model, opt, 3)
    save_checkpoint(tmp_path / "base", model, {"step": 3}, optimizer=opt)

    resumed, _ = load_checkpoint(tmp_path / "base")
    opt2 = make_opt(resumed)
    assert load_optimizer(tmp_path / "base", opt2)
    assert opt2.param_groups[0]["betas"] == (0.9, 0.95)
    assert opt2.param_groups[0]["weight_decay"] == 0.1
    train_steps(model, opt, 2, seed=9)
    train_steps(resumed, opt2, 2, seed=9)
    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_no_optimizer_saved_returns_false(tmp_path):
    model = tiny()
    save_checkpoint(tmp_path / "sft", model, {"step": 1}, optimizer=make_opt(model))
    save_checkpoint(tmp_path / "sft", model, {"step": 2})  # stage finished: state dropped
    assert not (tmp_path / "sft" / "optimizer.safetensors").exists()
    assert load_optimizer(tmp_path / "sft", make_opt(model)) is False


def test_files_on_disk_are_safetensors_and_json(tmp_path):
    save_checkpoint(tmp_path / "base", tiny(), {"step": 1})
    names = sorted(p.name for p in (tmp_path / "base").iterdir())
    assert names == ["meta.json", "model.safetensors"]
    meta = json.loads((tmp_path / "base" / "meta.json").read_text())
    assert meta["files"]["model.safetensors"]["bytes"] == (tmp_path / "base" /
                                                          "model.safetensors").stat().st_size
    assert not list(tmp_path.glob(".base*"))  # no temp folders left behind


def test_crash_before_swap_leaves_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "base", tiny(seed=0), {"step": 1})
    real_replace = os.replace

    def crash(*a, **k):
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(CheckpointError, match="simulated crash.*intact"):
        save_checkpoint(tmp_path / "base", tiny(seed=1), {"step": 2})
    monkeypatch.setattr(os, "replace", real_replace)
    _, meta = load_checkpoint(tmp_path / "base")
    assert meta["step"] == 1
    assert not list(tmp_path.glob(".base*"))  # the unused new folder was removed


def test_killed_between_the_two_renames_falls_back_to_old(tmp_path):
    save_checkpoint(tmp_path / "base", tiny(seed=0), {"step": 1})
    os.replace(tmp_path / "base", tmp_path / ".base.old-99999")  # what a SIGKILL there leaves
    _, meta = load_checkpoint(tmp_path / "base")  # the .old folder still serves
    assert meta["step"] == 1
    save_checkpoint(tmp_path / "base", tiny(seed=2), {"step": 3})  # next save cleans up
    assert load_checkpoint(tmp_path / "base")[1]["step"] == 3
    assert not list(tmp_path.glob(".base*"))


def test_kill_mid_save_in_a_subprocess_leaves_previous_readable(tmp_path):
    """A real SIGKILL while a save is writing: the previous checkpoint must still load."""
    save_checkpoint(tmp_path / "base", tiny(), {"step": 1})
    script = textwrap.dedent(f"""
        import os, signal, torch
        import engine.model.checkpoint as ck
        from engine.model.gpt import GPT, GPTConfig
        real = ck._write_synced
        def write_then_die(path, data):
            if path.name == "model.safetensors":
                with open(path, "wb") as f:
                    f.write(data[: len(data) // 2])  # half a file, then the power goes
                os.kill(os.getpid(), signal.SIGKILL)
            real(path, data)
        ck._write_synced = write_then_die
        m = GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=2, n_embd=16))
        ck.save_checkpoint({str(tmp_path / "base")!r}, m, {{"step": 2}})
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), timeout=120)
    assert proc.returncode == -9
    assert load_checkpoint(tmp_path / "base")[1]["step"] == 1


def test_truncated_model_file_named_in_error(tmp_path):
    save_checkpoint(tmp_path / "base", tiny(), {"step": 1})
    path = tmp_path / "base" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*truncated"):
        load_checkpoint(tmp_path / "base")


def test_corrupted_bytes_detected(tmp_path):
    save_checkpoint(tmp_path / "base", tiny(), {"step": 1})
    path = tmp_path / "base" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte inside a weight
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*sha256"):
        load_checkpoint(tmp_path / "base")


def test_foreign_safetensors_file_rejected(tmp_path):
    from safetensors.torch import save_file

    save_checkpoint(tmp_path / "base", tiny(), {"step": 1})
    hf_style = {"h.0.attn.c_attn.weight": torch.zeros(3, 3)}
    save_file(hf_style, tmp_path / "base" / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*foreign"):
        load_checkpoint(tmp_path / "base")


def test_garbage_and_missing_meta(tmp_path):
    save_checkpoint(tmp_path / "base", tiny(), {"step": 1})
    meta = tmp_path / "base" / "meta.json"
    meta.write_text('{"format": "deepdive-checkpoint/1", "conf')
    with pytest.raises(CheckpointError, match=r"meta\.json.*JSON"):
        load_checkpoint(tmp_path / "base")
    meta.write_text('{"hello": 1}')
    with pytest.raises(CheckpointError, match=r"meta\.json.*not a deepdive"):
        load_checkpoint(tmp_path / "base")
    meta.unlink()
    with pytest.raises(CheckpointError, match=r"meta\.json.*missing"):
        load_checkpoint(tmp_path / "base")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


def test_model_from_another_checkpoint_is_caught(tmp_path):
    save_checkpoint(tmp_path / "a", tiny(seed=0), {"step": 1})
    save_checkpoint(tmp_path / "b", tiny(seed=1), {"step": 2})
    (tmp_path / "b" / "model.safetensors").replace(tmp_path / "a" / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"a/model\.safetensors.*meta\.json"):
        load_checkpoint(tmp_path / "a")


def test_other_files_in_stage_folder_survive_a_save(tmp_path):
    save_checkpoint(tmp_path / "rl", tiny(), {"step": 1})
    (tmp_path / "rl" / "samples.txt").write_text("keep me")
    save_checkpoint(tmp_path / "rl", tiny(), {"step": 2})
    assert (tmp_path / "rl" / "samples.txt").read_text() == "keep me"
