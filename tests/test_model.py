"""The GPT: shapes, loss, causality, KV cache == full recompute, padding, tying, FLOPs, devices."""

import math

import pytest
import torch

from engine.model.device import autocast, peak_flops, pick_device
from engine.model.gpt import GPT, GPTConfig


def tiny(arch="deepdive", **kw) -> GPT:
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=97, block_size=64, n_layer=2, n_head=4, n_embd=32, arch=arch, **kw)
    return GPT(cfg).eval()


ARCHS = ["deepdive", "gpt2"]


@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_and_loss(arch):
    model = tiny(arch)
    idx = torch.randint(0, 97, (3, 10))
    logits, loss = model(idx)
    assert logits.shape == (3, 10, 97) and logits.dtype == torch.float32 and loss is None
    targets = torch.randint(0, 97, (3, 10))
    _, loss = model(idx, targets)
    # At init the model is near uniform: loss close to ln(vocab).
    assert abs(loss.item() - math.log(97)) < 0.3


def test_loss_ignores_minus_one():
    model = tiny()
    idx = torch.randint(0, 97, (2, 8))
    targets = torch.randint(0, 97, (2, 8))
    masked = targets.clone()
    masked[:, :4] = -1
    logits, loss = model(idx, masked)
    want = torch.nn.functional.cross_entropy(logits[:, 4:].reshape(-1, 97),
                                             targets[:, 4:].reshape(-1))
    assert torch.allclose(loss, want)


@pytest.mark.parametrize("arch", ARCHS)
def test_causal_future_never_changes_past(arch):
    model = tiny(arch)
    idx = torch.randint(0, 97, (1, 20))
    changed = idx.clone()
    changed[0, 12:] = (changed[0, 12:] + 5) % 97
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.equal(a[0, :12], b[0, :12])
    assert not torch.allclose(a[0, 12:], b[0, 12:])


@pytest.mark.parametrize("arch", ARCHS)
def test_kv_cache_equals_full_recompute(arch):
    model = tiny(arch)
    idx = torch.randint(0, 97, (2, 30))
    full, _ = model(idx)
    cache = model.new_cache(batch=2)
    parts = [model(idx[:, :12], cache=cache)[0]]  # prefill
    parts += [model(idx[:, t : t + 1], cache=cache)[0] for t in range(12, 20)]  # one at a time
    parts.append(model(idx[:, 20:], cache=cache)[0])  # a chunk after a prefix
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_left_padded_rows_compute_what_they_would_alone(arch):
    model = tiny(arch)
    short, long = torch.randint(0, 97, (1, 5)), torch.randint(0, 97, (1, 9))
    batch = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long])
    cache = model.new_cache(batch=2, pad=[4, 0])
    logits, _ = model(batch, cache=cache)
    step, _ = model(torch.tensor([[7], [8]]), cache=cache)
    alone, _ = model(torch.cat([short, torch.tensor([[7]])], 1))
    assert torch.allclose(logits[0, 4:], alone[0, :5], atol=1e-5)
    assert torch.allclose(step[0, 0], alone[0, 5], atol=1e-5)
    assert torch.allclose(logits[1], model(long)[0][0], atol=1e-5)
    assert not torch.isnan(logits).any()


def test_last_only_and_context_limit():
    model = tiny()
    idx = torch.randint(0, 97, (1, 64))
    full, _ = model(idx)
    last, _ = model(idx, cache=model.new_cache(), last_only=True)
    assert last.shape == (1, 1, 97) and torch.allclose(last[0, 0], full[0, -1], atol=1e-5)
    with pytest.raises(ValueError, match="context"):
        model(torch.randint(0, 97, (1, 65)))


def test_tied_head_and_param_count():
    model = tiny()
    assert model.lm_head.weight is model.transformer.wte.weight
    c = model.config
    per_block = 4 * c.n_embd**2 + 8 * c.n_embd**2 + 2 * c.n_embd  # attn, mlp, two RMSNorm gains
    assert model.num_params() == c.vocab_size * c.n_embd + c.n_layer * per_block + c.n_embd
    n = model.num_params()
    assert model.flops_per_token() == 6 * n + 12 * c.n_layer * c.n_embd * c.block_size
    g = tiny("gpt2")
    assert g.flops_per_token() == 6 * (g.num_params() - 64 * 32) + 12 * 2 * 32 * 64


def test_config_round_trip_and_errors():
    cfg = GPTConfig(vocab_size=10, n_layer=1, n_head=2, n_embd=8, arch="gpt2")
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="arch"):
        GPTConfig(vocab_size=10, arch="llama")
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=10, n_head=3, n_embd=8)
    with pytest.raises(ValueError, match="unknown GPTConfig"):
        GPTConfig.from_dict({"vocab_size": 10, "bogus": 1})


def test_init_scales():
    model = tiny()
    assert abs(model.transformer.wte.weight.std().item() - 0.02) < 0.003
    proj = model.transformer.h[0].attn.c_proj.weight.std().item()
    assert abs(proj - 0.02 / math.sqrt(4)) < 0.003


def test_pick_device_and_autocast():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device().type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            pick_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu-ish")
    with autocast("cpu"):  # a no-op on the CPU: fp32 stays fp32
        assert tiny()(torch.zeros(1, 3, dtype=torch.long))[0].dtype == torch.float32


def test_peak_flops_measured_on_cpu_is_plausible():
    flops = peak_flops("cpu")
    assert 1e8 < flops < 1e14
    assert peak_flops("cpu") == flops  # measured once, then cached
