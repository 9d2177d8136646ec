"""Replies to the unverifiable tasks, and how they are judged: the raters' gold and the reward
model's proxy, measured the same way in RLHF's curve and on the report card."""

from __future__ import annotations

import math

from engine.data import oracle as O
from engine.data.open_tasks import OpenTask


class OpenReplies:
    """A run's chat prompts for open tasks, and its models' replies as token ids and text."""

    def __init__(self, tok):
        self.tok = tok
        self.end = tok.special_id("<|assistant_end|>")

    def prompt(self, task: OpenTask) -> list[int]:
        from engine.tokens.chat import render_prompt

        return render_prompt(self.tok, task.messages)

    def generate(self, model, tasks: list[OpenTask], temperature: float, max_tokens: int,
                 seed: int) -> list[list[int]]:
        """One reply per task (64 at a time); temperature 0 is greedy. No top-k: the KL to the
        SFT model is estimated from these samples, which must come from the model itself."""
        from engine.model.sampler import SampleSettings, generate_batch

        core = getattr(model, "module", model)  # a DDP wrapper samples through its module
        settings = SampleSettings(temperature=temperature, top_k=None, max_tokens=max_tokens,
                                  seed=seed % 2**62)
        out: list[list[int]] = []
        for i in range(0, len(tasks), 64):
            out += generate_batch(core, [self.prompt(t) for t in tasks[i:i + 64]], settings,
                                  stop_ids=[self.end])
        return out

    def text(self, ids: list[int]) -> str:
        return self.tok.decode([t for t in ids if t != self.end])


def judged(io: OpenReplies, model, rm, world, tasks: list[OpenTask], max_tokens: int) -> dict:
    """Greedy replies of ``model`` to ``tasks``: their mean gold (the raters' quality, never a
    training signal), the reward model's mean score of them (the proxy), and the texts."""
    from engine.model.reward import scores

    ids = io.generate(model, tasks, 0.0, max_tokens, 0)
    texts = [io.text(r) for r in ids]
    golds = [O.gold(world, t, r).score for t, r in zip(tasks, texts, strict=True)]
    seqs = [io.prompt(t) + r for t, r in zip(tasks, ids, strict=True)]
    proxies = scores(rm, seqs) if rm is not None else []
    return {"gold": round(_mean(golds), 4),
            "proxy": round(_mean(proxies), 4) if proxies else None,
            "texts": texts, "golds": golds, "proxies": proxies}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
