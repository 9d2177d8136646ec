"""A decoder-only GPT in plain PyTorch, written to be read (in the spirit of nanoGPT/nanochat).

Two architectures share one class, chosen by ``GPTConfig.arch``:

- ``"deepdive"`` (what we train): rotary positions (RoPE), RMSNorm, no biases, tied embedding/head.
- ``"gpt2"`` (for imported OpenAI GPT-2 weights): learned positions, LayerNorm with biases,
  biases on every linear layer, tied embedding/head.

Both use causal attention through ``F.scaled_dot_product_attention`` and a 4x MLP with GELU(tanh).
Parameter names follow nanoGPT (``transformer.h.0.attn.c_attn.weight`` ...) so GPT-2 weights map
over with a transpose and nothing else.

For inference, a ``KVCache`` keeps every layer's keys and values so that after the prompt is
processed once ("prefill") each new token costs one position's work instead of the whole context.
A cache may also carry per-row left padding, which lets a batch of prompts of different lengths
decode together (see ``engine/model/sampler.py``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

ARCHS = ("deepdive", "gpt2")


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 256  # the longest sequence the model sees (context length)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    arch: str = "deepdive"  # "deepdive" (RoPE, RMSNorm, no biases) | "gpt2" (imported weights)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive whole number, not {value!r}")
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; expected one of {ARCHS}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.arch == "deepdive" and (self.n_embd // self.n_head) % 2:
            raise ValueError("RoPE needs an even head size (n_embd / n_head)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        if not isinstance(d, dict):
            raise ValueError(f"a model config is a JSON object, not {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown GPTConfig fields: {sorted(unknown)}")
        return cls(**d)


class KVCache:
    """Preallocated keys/values for every layer, plus where the next token goes.

    ``pad`` (optional, one int per row) is how many slots at the start of each row are left
    padding: those slots are never attended to, and each row's positions start after its padding,
    so a padded row computes exactly what it would alone.
    """

    def __init__(self, n_layer: int, batch: int, max_len: int, pad: list[int] | None = None,
                 device: torch.device | str = "cpu", max_position: int | None = None):
        self.n_layer, self.batch, self.max_len = n_layer, batch, max_len
        self.device = torch.device(device)
        self.pos = 0  # slots filled so far (the same for every row; padding counts as filled)
        self.slots = torch.arange(max_len, device=self.device)  # sliced, not rebuilt, each step
        self.k: list[Tensor] = []  # per layer (B, H, max_len, D), allocated on first use
        self.v: list[Tensor] = []
        self.max_position = max_position
        self.pad = None
        self.pad_min = 0
        if pad is not None and any(pad):
            if len(pad) != batch:
                raise ValueError(f"pad has {len(pad)} rows, batch is {batch}")
            self.pad = torch.tensor(pad, dtype=torch.long, device=self.device)
            self.pad_min = min(pad)

    def positions(self, T: int) -> Tensor:
        """Position ids of the next T slots: (1, T), or (B, T) when rows are padded."""
        slots = self.slots[self.pos : self.pos + T]
        if self.pad is None:
            return slots[None]
        # Padding slots sit at position 0. A row that has filled its context is finished, but the
        # batch still steps it until every row is done: it stays at the last position (and
        # its tokens are thrown away) rather than index past the position tables.
        return (slots[None] - self.pad[:, None]).clamp(0, self.max_position)

    def last_position(self, T: int) -> int:
        """The largest position id among the next T slots (known without touching the device)."""
        return self.pos + T - 1 - self.pad_min

    def attn_mask(self, T: int) -> tuple[Tensor | None, bool]:
        """(mask, is_causal) for T new queries against all slots filled after this step."""
        S = self.pos + T
        if self.pad is None:
            if T == 1:
                return None, False  # one new token may look at everything before it
            if self.pos == 0:
                return None, True  # plain prefill: the usual causal triangle
        q = self.slots[self.pos : S, None]  # (T, 1) query slots
        k = self.slots[None, :S]  # (1, S) key slots
        mask = (k <= q)[None]  # (1, T, S)
        if self.pad is not None:
            real = k[None] >= self.pad[:, None, None]  # (B, 1, S): not padding
            # A padding query attends to itself alone, so no row is fully masked (which gives NaN).
            mask = (mask & real) | (k == q)[None]
        return mask[:, None], False  # (B|1, 1, T, S), broadcast over heads

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store this step's k, v (B, H, T, D) for one layer; return all of them so far."""
        B, H, T, D = k.shape
        if not self.k:
            shape = (B, H, self.max_len, D)
            self.k = [k.new_zeros(shape) for _ in range(self.n_layer)]
            self.v = [v.new_zeros(shape) for _ in range(self.n_layer)]
        end = self.pos + T
        if end > self.max_len:
            raise ValueError(f"KV cache is full: {end} slots needed, {self.max_len} allocated")
        k_all, v_all = self.k[layer], self.v[layer]
        k_all.narrow(2, self.pos, T).copy_(k)
        v_all.narrow(2, self.pos, T).copy_(v)
        return k_all.narrow(2, 0, end), v_all.narrow(2, 0, end)

    def advance(self, T: int) -> None:
        self.pos += T


def rotary_tables(block_size: int, head_dim: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """cos/sin of the rotation angles, (block_size, head_dim / 2) each."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(block_size, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (x1[i], x2[i]) of each head by a position-dependent angle. x: (B, H, T, D)."""
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1).type_as(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        bias = config.arch == "gpt2"
        self.n_head = config.n_head
        # q, k and v of all heads in one matmul
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=bias)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None, mask: Tensor | None,
                is_causal: bool, cache: KVCache | None, layer: int) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        if cache is not None:
            k, v = cache.update(layer, k, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        bias = config.arch == "gpt2"
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


def make_norm(config: GPTConfig) -> nn.Module:
    if config.arch == "gpt2":
        return nn.LayerNorm(config.n_embd, eps=1e-5)  # GPT-2's layer_norm_epsilon
    return nn.RMSNorm(config.n_embd, eps=1e-6)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = make_norm(config)
        self.mlp = MLP(config)

    def forward(self, x, rope, mask, is_causal, cache, layer):
        x = x + self.attn(self.ln_1(x), rope, mask, is_causal, cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        parts = dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            ln_f=make_norm(config),
        )
        if config.arch == "gpt2":
            parts["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        self.transformer = nn.ModuleDict(parts)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying: the output head reads logits with the input embedding matrix. At small
        # widths the embedding is a large share of all parameters, so this halves that share.
        self.lm_head.weight = self.transformer.wte.weight
        if config.arch == "deepdive":
            cos, sin = rotary_tables(config.block_size, config.n_embd // config.n_head)
            # Not persistent: computed from the config, never saved in a checkpoint.
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        # GPT-2 paper: scale the residual projections by 1/sqrt(2 * n_layer) at init, because
        # each block adds two of them to the residual stream.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def new_cache(self, batch: int = 1, max_len: int | None = None,
                  pad: list[int] | None = None) -> KVCache:
        device = self.transformer.wte.weight.device
        max_len = max_len or self.config.block_size
        return KVCache(self.config.n_layer, batch, max_len, pad, device,
                       max_position=self.config.block_size - 1)

    def forward(self, idx: Tensor, targets: Tensor | None = None, cache: KVCache | None = None,
                last_only: bool = False) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) token ids -> logits (B, T, V) float32 and the mean loss over targets != -1.

        With a cache, idx holds only the new tokens; ``last_only`` computes logits for the last
        position alone (all that sampling needs), which saves the big head matmul on a prefill.
        """
        x = self.trunk(idx, cache)
        if last_only:
            x = x[:, -1:]
        logits = self.lm_head(x).float()
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=-1)
        return logits, loss

    def trunk(self, idx: Tensor, cache: KVCache | None = None) -> Tensor:
        """idx (B, T) -> the final hidden states (B, T, n_embd) after the last norm: what the
        language-model head reads, and what a reward model's scalar head reads."""
        T = idx.shape[1]
        if cache is None:
            if T > self.config.block_size:
                raise ValueError(f"{T} tokens exceed the context of {self.config.block_size}")
            pos = torch.arange(T, device=idx.device)[None]
            mask, is_causal = None, True
        else:
            pos = cache.positions(T)
            mask, is_causal = cache.attn_mask(T)
            if cache.pad is None and cache.last_position(T) >= self.config.block_size:
                raise ValueError(f"position {cache.last_position(T)} is past the context "
                                 f"of {self.config.block_size} tokens")
        x = self.transformer.wte(idx)
        rope = None
        if self.config.arch == "gpt2":
            x = x + self.transformer.wpe(pos)
        else:
            rope = self.rope_cos[pos][:, None], self.rope_sin[pos][:, None]  # (B|1, 1, T, D/2)
        for layer, block in enumerate(self.transformer.h):
            x = block(x, rope, mask, is_causal, cache, layer)
        if cache is not None:
            cache.advance(T)
        return self.transformer.ln_f(x)

    def num_params(self) -> int:
        """All parameters, the tied embedding/head matrix counted once."""
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward), the PaLM paper's appendix B estimate
        as nanoGPT/nanochat use it: 6 * N + 12 * n_layer * n_head * head_dim * block_size.

        N counts every weight that takes part in a matmul: the blocks and the (tied) head;
        position embeddings are lookups and are left out. The second term is attention's
        q @ k and att @ v at full context, which N does not see.
        """
        c = self.config
        n = self.num_params()
        if c.arch == "gpt2":
            n -= self.transformer.wpe.weight.numel()
        return 6.0 * n + 12.0 * c.n_layer * c.n_embd * c.block_size
