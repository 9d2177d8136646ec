"""A reward model: the GPT backbone with a scalar head, trained on preference pairs.

As in InstructGPT (Ouyang et al. 2022), it reads a whole exchange (prompt and reply, token ids
in the chat format) and training pushes the preferred reply's score above the other's with the
Bradley–Terry loss ``-log sigmoid(r(chosen) - r(rejected))``. Unlike InstructGPT, whose score
is the head on the last token's hidden state, the score here is the *sum* of the head over every
token: what raters reward is a sum of things said (each true fact, each false one, each warm
word, each word past the length band), and a tiny backbone's last state summarises a reply too
poorly to learn that from a thousand noisy pairs (docs/measurements.md has the dev figures).
A summed score also favours saying more, as real reward models do (Singhal et al. 2023): one
of the things a policy can learn to game. It starts from a language model (the SFT model in
deepdive), so it begins knowing what the words mean; the head starts at zero, so every reply
scores 0 and the first loss is exactly log 2.

What it learns is a stand-in for the raters, learnt from noisy labels on the replies it was
shown: optimise a policy against it for long and the policy finds what it over-rewards.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from engine.model.gpt import GPT

Pair = tuple[list[int], list[int]]  # (chosen, rejected) token ids, prompt included


class RewardModel(nn.Module):
    def __init__(self, backbone: GPT):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.n_embd, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def config(self):
        """The backbone's config: a reward model's checkpoint is a GPT's plus its head."""
        return self.backbone.config

    def num_params(self) -> int:
        return self.backbone.num_params() + sum(p.numel() for p in self.head.parameters())

    @classmethod
    def build(cls, config) -> RewardModel:
        """An untrained reward model of ``config`` (for engine.model.checkpoint to load into)."""
        return cls(GPT(config))

    def forward(self, idx: Tensor, lengths: Tensor) -> Tensor:
        """idx (B, T) right-padded, lengths (B,) -> one score per row: the sum of a score per
        real token. Causal attention: no real token sees the padding after it, and the prompt's
        tokens never see the reply, so two replies to one prompt differ only by their replies'
        tokens (the prompt's share cancels in every comparison the loss and RLHF make)."""
        per_token = self.head(self.backbone.trunk(idx).float()).squeeze(-1)
        real = torch.arange(idx.shape[1], device=idx.device)[None, :] < lengths[:, None]
        return (per_token * real).sum(dim=1)


def pad_batch(seqs: list[list[int]], block_size: int,
              device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Right-padded ids and lengths; a sequence longer than the context keeps its end (the
    reply is what is judged)."""
    seqs = [s[-block_size:] for s in seqs]
    if any(len(s) == 0 for s in seqs):
        raise ValueError("a reward model cannot score an empty sequence")
    width = max(len(s) for s in seqs)
    idx = torch.zeros(len(seqs), width, dtype=torch.long)
    for row, s in enumerate(seqs):
        idx[row, : len(s)] = torch.tensor(s, dtype=torch.long)
    return idx.to(device), torch.tensor([len(s) for s in seqs], device=device)


def scores(rm: RewardModel, seqs: list[list[int]], batch: int = 32) -> list[float]:
    """The reward of each sequence (evaluation mode, no gradients)."""
    device = next(rm.parameters()).device
    block = rm.backbone.config.block_size
    was_training = rm.training
    rm.eval()
    out: list[float] = []
    with torch.no_grad():
        for i in range(0, len(seqs), batch):
            idx, lengths = pad_batch(seqs[i:i + batch], block, device)
            out += rm(idx, lengths).tolist()
    rm.train(was_training)
    return out


def bt_loss(rm: nn.Module, pairs: list[Pair], block_size: int | None = None) -> Tensor:
    """Mean Bradley–Terry loss of a batch of pairs (one forward pass over both sides). ``rm``
    may be wrapped (DDP); then ``block_size`` says the context."""
    device = next(rm.parameters()).device
    idx, lengths = pad_batch([c for c, _ in pairs] + [r for _, r in pairs],
                             block_size or rm.backbone.config.block_size, device)
    r = rm(idx, lengths)
    chosen, rejected = r[: len(pairs)], r[len(pairs):]
    return -F.logsigmoid(chosen - rejected).mean()


def pair_accuracy(rm: RewardModel, pairs: list[Pair]) -> float:
    """Share of pairs whose chosen side the model scores higher (ties count half)."""
    if not pairs:
        raise ValueError("no pairs to measure")
    s = scores(rm, [c for c, _ in pairs] + [r for _, r in pairs])
    n = len(pairs)
    return sum(1.0 if a > b else 0.5 if a == b else 0.0
               for a, b in zip(s[:n], s[n:], strict=True)) / n


def train_reward_model(rm: RewardModel, pairs: list[Pair], steps: int, batch_size: int = 16,
                       lr: float = 1e-4, seed: int = 0) -> list[float]:
    """AdamW on the Bradley–Terry loss over batches drawn (seeded) from ``pairs``; returns the
    loss of every step."""
    if not pairs:
        raise ValueError("no preference pairs to learn from")
    rng = random.Random(seed)
    opt = torch.optim.AdamW(rm.parameters(), lr=lr, weight_decay=0.0)
    rm.train()
    losses = []
    for step in range(steps):
        batch = [pairs[rng.randrange(len(pairs))] for _ in range(min(batch_size, len(pairs)))]
        loss = bt_loss(rm, batch)
        value = loss.detach().item()
        if not math.isfinite(value):
            raise FloatingPointError(f"reward model loss became {value} at step {step + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(rm.parameters(), 1.0)
        opt.step()
        losses.append(value)
    return losses
