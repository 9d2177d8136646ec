"""Several models of one shape decoding together: one forward per step over stacked weights.

The Compare pane streams base, SFT and RL of one run side by side: three models with the same
``GPTConfig`` and different weights. At batch 1 a small model's decode step is mostly fixed
per-operation cost (norms, rotary, attention and the cache are many small operations beside the
matmuls), so three models in three threads cost about three times one, and fight over the cores.
Stacking their weights along a new leading dimension turns each matmul into one batched matmul
(``bmm``) whose batch index is the model (far less than three matmuls), and every other
operation is paid once. The figures are in docs/measurements.md.

``StackedGPT`` is the forward of ``engine.model.gpt.GPT`` written once more over stacked weights
(row m of every tensor is model m); it reuses the model's ``KVCache`` (one row per model, left
padding for prompts of different lengths) and rotary helpers. ``stream_stacked`` is
``engine.model.sampler.stream`` for many rows: each row keeps its own settings, seeded generator,
stop ids and token budget and yields the same ``TokenEvent``s; sampling is done row by row with the
row's own generator, so a seeded row draws the same tokens it would alone (up to float rounding
in the batched matmuls, which only matters at an exact tie). A row that finishes is dropped
from the batch; the others go on.
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.model.gpt import GPTConfig, KVCache, apply_rotary
from engine.model.sampler import (
    SampleSettings,
    TokenEvent,
    check_prompt,
    draw,
    fit_prompt,
    make_generator,
    sampling_probs,
    token_text,
)


def stack_key(model) -> tuple:
    """Models with equal keys can be stacked: same shape, device and dtype."""
    p = model.transformer.wte.weight
    return (tuple(sorted(model.config.to_dict().items())), str(p.device), p.dtype)


class StackedGPT:
    """The forward of several same-config GPTs at once, one row (batch 1) per model."""

    def __init__(self, models: Sequence):
        if not models:
            raise ValueError("nothing to stack")
        if len({stack_key(m) for m in models}) != 1:
            raise ValueError("stacked models need the same config, device and dtype")
        self.config: GPTConfig = models[0].config
        self.n_models = len(models)
        # named_parameters lists the tied head once, as transformer.wte.weight
        params = [dict(m.named_parameters()) for m in models]
        with torch.no_grad():
            # Linear weights are kept (M, in, out): at batch 1 bmm reads them faster than
            # transposed views of (M, out, in) (docs/measurements.md). The head reads the tied
            # embedding that way too, so it is kept both ways.
            self.w = {}
            for name in params[0]:
                stacked = torch.stack([p[name].detach() for p in params])
                if name.endswith(".weight") and (".c_" in name or name == "transformer.wte.weight"):
                    self.w[name + "_t"] = stacked.transpose(1, 2).contiguous()
                if ".c_" not in name or name.endswith(".bias"):
                    self.w[name] = stacked
        if self.config.arch == "deepdive":
            self.rope_cos, self.rope_sin = models[0].rope_cos, models[0].rope_sin

    @property
    def device(self) -> torch.device:
        return self.w["transformer.wte.weight"].device

    def select(self, rows: Sequence[int]) -> StackedGPT:
        """The same stack with only ``rows`` (in that order): a smaller batch for what is left."""
        index = torch.tensor(list(rows), device=self.device)
        out = object.__new__(StackedGPT)
        out.config, out.n_models = self.config, len(rows)
        out.w = {n: w.index_select(0, index) for n, w in self.w.items()}
        if self.config.arch == "deepdive":
            out.rope_cos, out.rope_sin = self.rope_cos, self.rope_sin
        return out

    def new_cache(self, max_len: int, pad: list[int] | None = None) -> KVCache:
        return KVCache(self.config.n_layer, self.n_models, max_len, pad, self.device,
                       max_position=self.config.block_size - 1)

    def _linear(self, x: Tensor, name: str) -> Tensor:
        """x (M, T, in) @ W[m]^T (+ b[m]) for every model m at once."""
        w_t, b = self.w[name + ".weight_t"], self.w.get(name + ".bias")
        if b is None:
            return torch.bmm(x, w_t)
        return torch.baddbmm(b[:, None], x, w_t)

    def _norm(self, x: Tensor, name: str) -> Tensor:
        C = x.shape[-1]
        w = self.w[name + ".weight"][:, None]
        if self.config.arch == "gpt2":  # LayerNorm with bias, GPT-2's epsilon
            return F.layer_norm(x, (C,), eps=1e-5) * w + self.w[name + ".bias"][:, None]
        return F.rms_norm(x, (C,), eps=1e-6) * w

    def forward(self, idx: Tensor, cache: KVCache, last_only: bool = False) -> Tensor:
        """idx (M, T): row m is model m's new tokens -> logits (M, T or 1, V) float32."""
        cfg = self.config
        M, T = idx.shape
        C, H = cfg.n_embd, cfg.n_head
        pos = cache.positions(T)
        mask, is_causal = cache.attn_mask(T)
        wte = self.w["transformer.wte.weight"]  # (M, V, C)
        rows = torch.arange(M, device=idx.device)
        x = wte[rows[:, None], idx]  # (M, T, C)
        rope = None
        if cfg.arch == "gpt2":
            x = x + self.w["transformer.wpe.weight"][rows[:, None], pos.expand(M, T)]
        else:
            rope = self.rope_cos[pos][:, None, None], self.rope_sin[pos][:, None, None]
        for layer in range(cfg.n_layer):
            p = f"transformer.h.{layer}."
            qkv = self._linear(self._norm(x, p + "ln_1"), p + "attn.c_attn")
            qkv = qkv.view(M, T, 3, H, C // H).permute(0, 2, 3, 1, 4)  # (M, q|k|v, H, T, D)
            if rope is not None:  # q and k rotated in one go: half the small operations
                qk = apply_rotary(qkv[:, :2], *rope)
                q, k, v = qk[:, 0], qk[:, 1], qkv[:, 2]
            else:
                q, k, v = qkv.unbind(1)
            k, v = cache.update(layer, k, v)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
            x = x + self._linear(y.transpose(1, 2).reshape(M, T, C), p + "attn.c_proj")
            h = F.gelu(self._linear(self._norm(x, p + "ln_2"), p + "mlp.c_fc"), approximate="tanh")
            x = x + self._linear(h, p + "mlp.c_proj")
        cache.advance(T)
        x = self._norm(x, "transformer.ln_f")
        if last_only:
            x = x[:, -1:]
        return torch.bmm(x, self.w["transformer.wte.weight_t"]).float()


def _probs(logits: Tensor, settings: Sequence[SampleSettings]) -> Tensor:
    """``sampling_probs`` row by row, (R, V) -> (R, V), one call per distinct shaping."""
    shape = [(s.temperature, s.top_k, s.top_p) for s in settings]
    if len(set(shape)) == 1:  # the usual case: every column shares one set of settings
        return sampling_probs(logits, settings[0])
    return torch.cat([sampling_probs(logits[r : r + 1], s) for r, s in enumerate(settings)])


def _keep_rows(cache: KVCache, rows: Sequence[int]) -> None:
    """Shrink a cache to ``rows`` in place, to follow ``StackedGPT.select``."""
    index = torch.tensor(list(rows), device=cache.device)
    cache.k = [k.index_select(0, index) for k in cache.k]
    cache.v = [v.index_select(0, index) for v in cache.v]
    cache.batch = len(rows)
    if cache.pad is not None:
        cache.pad = cache.pad.index_select(0, index)
        cache.pad_min = int(cache.pad.min())


class _Row:
    """What one stream keeps between steps."""

    def __init__(self, column: int, tok, ids: list[int], settings: SampleSettings,
                 stops: set[int], device: torch.device):
        self.column, self.tok, self.n_prompt = column, tok, len(ids)
        self.settings, self.stops = settings, stops
        self.generator = make_generator(settings.seed, device)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
        self.index = 0


def stream_stacked(models: Sequence, toks: Sequence, prompts: Sequence[Sequence[int]],
                   settings: Sequence[SampleSettings], stop_ids: Sequence[Sequence[int]],
                   cancel: threading.Event | None = None,
                   stacked: StackedGPT | None = None) -> Iterator[tuple[int, TokenEvent]]:
    """``engine.model.sampler.stream`` for several same-config models at once: yields
    ``(row, TokenEvent)``; each step yields one event per unfinished row, in row order.

    Row i uses ``models[i]``, ``toks[i]``, ``prompts[i]``, ``settings[i]`` and ``stop_ids[i]``
    and ends as ``stream`` would (its stop id, its ``max_tokens``, the end of the context);
    ``cancel`` ends them all. ``stacked`` may pass a ``StackedGPT`` of ``models`` built earlier
    (stacking copies every weight).
    """
    stacked = stacked or StackedGPT(models)
    block = stacked.config.block_size
    for p in prompts:
        check_prompt(p, stacked.config.vocab_size)
    ids = [fit_prompt(p, block, s.max_tokens)[0] for p, s in zip(prompts, settings, strict=True)]
    device = stacked.device
    rows = [_Row(i, toks[i], ids[i], settings[i], set(stop_ids[i]), device)
            for i in range(len(ids))]
    width = max(len(r) for r in ids)
    # No row outlives its context (a finished row leaves the batch), so this is every slot needed.
    steps = max(min(s.max_tokens, block - len(r)) for r, s in zip(ids, settings, strict=True))
    if steps <= 0:
        return
    pad = [width - len(r) for r in ids]
    with torch.inference_mode():
        cache = stacked.new_cache(width + steps, pad)
        idx = torch.tensor([[0] * p + r for p, r in zip(pad, ids, strict=True)], device=device)
        logits = stacked.forward(idx, cache, last_only=True)[:, -1]  # (rows, V)
        while rows:
            if cancel is not None and cancel.is_set():
                return
            probs = _probs(logits, [row.settings for row in rows])
            tokens = [int(draw(probs[r : r + 1], row.settings, row.generator))
                      for r, row in enumerate(rows)]
            # One topk and one copy out for every row's report, not one each.
            n_alt = min(max(row.settings.n_alternatives for row in rows), probs.size(-1))
            top_p, top_i = (t.tolist() for t in torch.topk(probs, max(n_alt, 1)))
            chosen = probs.gather(1, torch.tensor(tokens, device=device)[:, None])[:, 0].tolist()
            keep = []
            for r, (row, token) in enumerate(zip(rows, tokens, strict=True)):
                s = row.settings
                last = (token in row.stops or row.index + 1 == s.max_tokens
                        or row.n_prompt + row.index + 1 >= block
                        or (cancel is not None and cancel.is_set()))
                text = row.decoder.decode(row.tok.token_bytes(token), final=last)
                top = [(i, token_text(row.tok, i), p)
                       for i, p in zip(top_i[r], top_p[r], strict=True)][: s.n_alternatives]
                yield row.column, TokenEvent(row.index, token, text, chosen[r], top)
                row.index += 1
                if not last:
                    keep.append(r)
            if len(keep) < len(rows):
                if not keep:
                    return
                stacked = stacked.select(keep)
                _keep_rows(cache, keep)
                rows = [rows[r] for r in keep]
            idx = torch.tensor([tokens[r] for r in keep], device=device)[:, None]
            logits = stacked.forward(idx, cache)[:, -1]
