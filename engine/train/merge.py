"""WiSE-FT: a fine-tuned model's weights moved part of the way back to the pretrained ones.

Wortsman et al. 2022 ("Robust fine-tuning of zero-shot models") found that a straight line
between the pretrained and the fine-tuned weights holds models better than either end: the
fine-tuned end has learnt the task, the pretrained end still has what fine-tuning wore away,
and a point between keeps most of both. For a tiny chat model SFT wears away facts that only
pretraining read (entities no conversation names) and ties questions to the wordings it was
shown; keeping a share of the base model's weights gives some of both back, at some cost to
what only SFT taught, such as saying "I don't know" (the dev figures: docs/measurements.md).
"""

from __future__ import annotations

import torch


def interpolate(model: torch.nn.Module, pretrained: dict[str, torch.Tensor], keep: float) -> None:
    """Set ``model``'s weights to ``keep`` x its own + (1 - ``keep``) x ``pretrained``, in place.

    ``pretrained`` must hold every weight of ``model`` in the same shape (the model it was
    fine-tuned from); anything else is a ValueError naming the first mismatches."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"the share of fine-tuned weights kept must be in (0, 1], not {keep}")
    own = model.state_dict()
    bad = [k for k, v in own.items() if k not in pretrained or pretrained[k].shape != v.shape]
    if bad:
        raise ValueError(f"the pretrained weights do not fit this model: {', '.join(bad[:3])}")
    # built whole before loading: an interrupted merge never leaves half the weights moved
    merged = {k: torch.lerp(pretrained[k].to(v), v, keep) if v.is_floating_point() else v
              for k, v in own.items()}
    model.load_state_dict(merged)
