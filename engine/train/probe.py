"""The knowledge probe before SFT: which training facts does the base model actually know?

Llama 3's factuality recipe (and R-Tuning): sample the pretrained model on facts; where its
answers are consistently wrong, the SFT target is a refusal, not the fact. Fine-tuning a model
on facts it does not know teaches it to invent (Gekhman et al. 2024); refusing exactly where it
does not know teaches "I don't know" as a report on its own knowledge.

Each training fact's sentence prefix (``The capital of Belha is``) is continued greedily and
``samples - 1`` times at temperature 1 by the base model; a fact none of whose continuations
names the answer before its sentence ends ("born in the year 1954" names 1954) is "unknown".
The result is a pure function of the base weights and the seed, so a resumed SFT (or the
control stage) recomputes the same set.
"""

from __future__ import annotations

import re

import torch


@torch.no_grad()
def unknown_facts(model, tok, world, samples: int = 4, seed: int = 0
                  ) -> tuple[set[tuple[str, str]], dict]:
    """((subject, kind) pairs the base does not know, a summary for meta.json and the report)."""
    from engine.data.world import facts
    from engine.model.sampler import SampleSettings, generate_batch
    from engine.tokens.chat import render_document

    train = [f for f in facts(world) if world.split.get(f.subject) == "train"]
    bos = tok.special_id("<|bos|>")
    prompts = [render_document(tok, f.statement) for f in train for _ in range(samples)]
    longest = max((len(tok.encode(" " + f.answer)) for f in train), default=4)
    model.eval()
    outs: list[list[int]] = []
    for i in range(0, len(prompts), 256):
        chunk = prompts[i: i + 256]
        # the first of each fact's rows greedy, the others sampled: a multi-token answer (a
        # year is four digit tokens) that the model knows can still be missed by every sample
        greedy = [k for k in range(len(chunk)) if (i + k) % samples == 0]
        settings = SampleSettings(temperature=1.0, top_k=50, max_tokens=longest + 4,
                                  seed=seed * 7_919 + i)
        rows = generate_batch(model, chunk, settings, stop_ids=[bos])
        firsts = generate_batch(model, [chunk[k] for k in greedy],
                                SampleSettings(temperature=0.0, max_tokens=longest + 4),
                                stop_ids=[bos])
        for k, row in zip(greedy, firsts, strict=True):
            rows[k] = row
        outs += rows
    unknown: set[tuple[str, str]] = set()
    for j, f in enumerate(train):
        right = sum(_names(tok.decode([t for t in ids if t != bos]), f.answer)
                    for ids in outs[j * samples: (j + 1) * samples])
        if right == 0:
            unknown.add((f.subject, f.kind))
    summary = {"facts": len(train), "unknown": len(unknown), "samples": samples,
               "examples": sorted(f"{s}:{k}" for s, k in unknown)[:10]}
    return unknown, summary


def _names(continuation: str, answer: str) -> bool:
    """Whether the continuation's first sentence names the answer (as a whole word)."""
    first = re.split(r"\.(?:\s|$)|\n", continuation, maxsplit=1)[0]
    return re.search(rf"\b{re.escape(answer)}\b", first, re.IGNORECASE) is not None
