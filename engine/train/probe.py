"""The knowledge probe before SFT: which training facts does the base model actually know?

Llama 3's factuality recipe (and R-Tuning): sample the pretrained model on facts; where its
answers are consistently wrong, the SFT target is a refusal, not the fact. Fine-tuning a model
on facts it does not know teaches it to invent (Gekhman et al. 2024); refusing exactly where it
does not know teaches "I don't know" as a report on its own knowledge.

Each training fact's sentence prefix (``The capital of Belha is``) is continued ``samples``
times at temperature 1 from the base model; a fact none of whose continuations starts with the
answer is "unknown". The result is a pure function of the base weights and the seed, so a
resumed SFT (or the control stage) recomputes the same set.
"""

from __future__ import annotations

import re

import torch


@torch.no_grad()
def unknown_facts(model, tok, world, samples: int = 4, seed: int = 0
                  ) -> tuple[set[tuple[str, str]], dict]:
    """((subject, kind) pairs the base does not know, a summary for meta.json and the report)."""
    from engine.chat import render_document
    from engine.sampler import SampleSettings, generate_batch
    from engine.world import facts

    train = [f for f in facts(world) if world.split.get(f.subject) == "train"]
    bos = tok.special_id("<|bos|>")
    prompts = [render_document(tok, f.statement) for f in train for _ in range(samples)]
    longest = max((len(tok.encode(" " + f.answer)) for f in train), default=4)
    model.eval()
    outs: list[list[int]] = []
    for i in range(0, len(prompts), 256):
        settings = SampleSettings(temperature=1.0, top_k=50, max_tokens=longest + 1,
                                  seed=seed * 7_919 + i)
        outs += generate_batch(model, prompts[i: i + 256], settings, stop_ids=[bos])
    unknown: set[tuple[str, str]] = set()
    for j, f in enumerate(train):
        right = sum(re.match(rf"\s*{re.escape(f.answer)}\b",
                             tok.decode([t for t in ids if t != bos]), re.IGNORECASE) is not None
                    for ids in outs[j * samples: (j + 1) * samples])
        if right == 0:
            unknown.add((f.subject, f.kind))
    summary = {"facts": len(train), "unknown": len(unknown), "samples": samples,
               "examples": sorted(f"{s}:{k}" for s, k in unknown)[:10]}
    return unknown, summary
