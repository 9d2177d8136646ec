"""RLHF: a reward model learnt from rater preferences, then RL against it with a KL leash.

Two stages, as in InstructGPT (Ouyang et al. 2022):

- ``reward``: the SFT model answers each train task of the unverifiable kind several times
  (temperature 1); hidden raters (engine/data/oracle.py) pick the better reply of pairs, with
  their noise; a ``RewardModel`` (the SFT backbone and a scalar head) learns those choices with
  the Bradley–Terry loss. Its accuracy on pairs of dev and test tasks is measured against a
  rater, next to how often two raters agree.
- ``rlhf``: the policy (from SFT) samples replies to train tasks and is pushed, with the same
  group-relative policy gradient as RL (engine/train/rl.py), towards replies the *reward model*
  scores high, minus ``kl_coef`` times each reply's log-probability ratio to the SFT model.
  Every ``eval_every`` steps the curve gets the proxy (the reward model's score), the gold
  (the raters' own quality score, never seen in training) on dev and test tasks, and the KL.
  The weights at the best dev gold are kept apart (``rlhf/``); the stage's own folder holds the
  end (``rlhf_over/``). Gao, Schulman & Hilton (2023) measured the shape to expect: proxy up
  all the way, gold up, then down, as the policy finds what the reward model over-rewards.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import torch

from engine.data import oracle as O
from engine.data.open_replies import OpenReplies, judged
from engine.data.open_tasks import OpenTask, open_tasks
from engine.model import reward as R
from engine.train.distributed import DistInfo, unwrap
from engine.train.loop import StepResult
from engine.train.presets import RewardConfig, RLHFConfig
from engine.train.rl import _global_mean, _global_sum, response_logprobs

EVAL_SPLITS = ("dev", "test")


# -- the reward model ---------------------------------------------------------------------------

class RewardTask:
    """Bradley–Terry on rater-labelled pairs of SFT replies (the pairs are made once, seeded)."""

    SALT = 5

    def __init__(self, tok, world, sft_model, cfg: RewardConfig, seed: int,
                 device: torch.device, dist: DistInfo | None = None):
        self.world, self.cfg, self.seed, self.device = world, cfg, seed, device
        self.dist = dist or DistInfo()
        self.io = OpenReplies(tok)
        self.block = sft_model.config.block_size
        train = open_tasks(world, "train", 10_000)
        self.pairs = self._train_pairs(sft_model, train)
        if not self.pairs:
            raise ValueError("the SFT model's replies never differed: no preference pairs")
        self.held = {split: self._rated_pairs(sft_model, open_tasks(world, split, 10_000), split)
                     for split in EVAL_SPLITS}

    def _samples(self, model, tasks: list[OpenTask], n: int, tag: str) -> list[list[list[int]]]:
        """``n`` replies of ``model`` to each task, grouped by task."""
        flat = self.io.generate(model, [t for t in tasks for _ in range(n)], 1.0,
                                self.cfg.max_tokens, _seed(f"{tag}:{self.seed}"))
        return [flat[i * n:(i + 1) * n] for i in range(len(tasks))]

    def _train_pairs(self, model, tasks: list[OpenTask]) -> list[R.Pair]:
        """(chosen, rejected) ids; one rater's (noisy) choice among distinct replies."""
        rng = random.Random(f"rm-pairs:{self.seed}")
        rater = random.Random(f"rm-rater:{self.seed}")
        pairs = []
        for task, replies in zip(tasks, self._samples(model, tasks, self.cfg.samples_per_prompt,
                                                      "rm-train"), strict=True):
            prompt = self.io.prompt(task)
            for a, b in _distinct_pairs(replies, self.cfg.pairs_per_prompt, rng):
                pick = O.prefer(self.world, task, self.io.text(a), self.io.text(b), rater)
                chosen, rejected = (a, b) if pick == 0 else (b, a)
                pairs.append((prompt + chosen, prompt + rejected))
        return pairs

    def _rated_pairs(self, model, tasks: list[OpenTask], split: str) -> dict:
        """Held-out pairs of ``split``: rater A's labels, and two raters' agreement on them;
        ``texts`` (task, reply a, reply b) and ``labels`` (rater A's pick) for diagnostics."""
        rng = random.Random(f"rm-eval:{split}:{self.seed}")
        texts, ids = [], []
        for task, replies in zip(tasks, self._samples(model, tasks,
                                                      self.cfg.eval_samples_per_prompt,
                                                      f"rm-{split}"), strict=True):
            prompt = self.io.prompt(task)
            for a, b in _distinct_pairs(replies, 10_000, rng):
                texts.append((task, self.io.text(a), self.io.text(b)))
                ids.append((prompt + a, prompt + b))
        rater = random.Random(f"rater-a:{self.seed}")  # oracle.self_agreement's first rater
        labels = [O.prefer(self.world, t, a, b, rater) for t, a, b in texts]
        pairs = [(a, b) if pick == 0 else (b, a) for (a, b), pick in zip(ids, labels, strict=True)]
        return {"pairs": pairs, "agreement": O.self_agreement(self.world, texts, self.seed),
                "texts": texts, "labels": labels}

    def step(self, model, step: int) -> StepResult:
        rng = random.Random(self.seed * 7_919 + self.SALT * 104_729 + step)
        batch = [self.pairs[rng.randrange(len(self.pairs))] for _ in range(self.cfg.batch_size)]
        mine = batch[self.dist.shard(len(batch))]
        loss = R.bt_loss(model, mine, self.block)
        tokens = _global_sum(sum(len(c) + len(r) for c, r in mine), self.dist, self.device)
        return StepResult(loss=loss, tokens=tokens)

    @torch.no_grad()
    def evaluate(self, model, step: int) -> dict:
        rm = unwrap(model)
        out = {"train_pairs": len(self.pairs)}
        for split, held in self.held.items():
            if held["pairs"]:
                out[f"pair_acc_{split}"] = round(R.pair_accuracy(rm, held["pairs"]), 4)
                out[f"self_agreement_{split}"] = round(held["agreement"], 4)
                out[f"pairs_{split}"] = len(held["pairs"])
        return out

    def sample(self, model, step: int) -> None:
        return None


def _distinct_pairs(replies: list[list[int]], n: int, rng: random.Random):
    """Up to ``n`` pairs (i < j) of replies that differ, in a seeded order."""
    pairs = [(a, b) for i, a in enumerate(replies) for b in replies[i + 1:] if a != b]
    rng.shuffle(pairs)
    return pairs[:n]


def _seed(tag: str) -> int:
    return int.from_bytes(tag.encode(), "little") % 2**61


# -- RL against the reward model ----------------------------------------------------------------

class RlhfTask:
    """The policy gradient of RL with the reward model's score for a reward, a KL penalty to
    the SFT model, and the gold/proxy/KL curve; keeps the weights at the dev gold peak."""

    SALT = 7

    def __init__(self, tok, world, ref_model, reward_model, cfg: RLHFConfig, seed: int,
                 device: torch.device, dist: DistInfo | None = None,
                 peak: tuple[Path, dict] | None = None):
        self.world, self.cfg, self.seed, self.device = world, cfg, seed, device
        self.dist = dist or DistInfo()
        self.io = OpenReplies(tok)
        self.ref, self.rm = ref_model.eval(), reward_model.eval()
        for p in (*self.ref.parameters(), *self.rm.parameters()):
            p.requires_grad_(False)
        self.train = open_tasks(world, "train", 10_000)
        self.held = {split: open_tasks(world, split, 10_000) for split in EVAL_SPLITS}
        self.peak_dir, self.peak_meta = peak if peak else (None, {})
        self.best = _peak_gold(self.peak_dir)  # a resumed stage keeps the peak it found

    def _kl(self, model, prompts, responses) -> tuple[torch.Tensor, torch.Tensor]:
        """(policy log p per token, with gradients; each reply's summed log-ratio to SFT)."""
        logp, mask = response_logprobs(model, prompts, responses, self.device)
        with torch.no_grad():
            ref, _ = response_logprobs(self.ref, prompts, responses, self.device)
        return logp, ((logp.detach() - ref) * mask).sum(dim=1)

    def step(self, model, step: int) -> StepResult:
        cfg, G = self.cfg, self.cfg.group
        rng = random.Random(self.seed * 7_919 + self.SALT * 104_729 + step)
        tasks = [self.train[rng.randrange(len(self.train))] for _ in range(cfg.batch_size)]
        mine = [t for t in tasks[self.dist.shard(len(tasks))] for _ in range(G)]
        seed = self.seed * 1_000_003 + step * 31 + self.dist.rank
        responses = self.io.generate(model, mine, cfg.temperature, cfg.max_tokens, seed)
        prompts = [self.io.prompt(t) for t in mine]
        proxy = torch.tensor(R.scores(self.rm, [p + r for p, r in zip(prompts, responses,
                                                                        strict=True)]))
        logp, kl = self._kl(model, prompts, responses)
        total = (proxy.to(self.device) - cfg.kl_coef * kl).view(-1, G)
        # group-relative and scaled by the group's spread: the reward model's scores have no
        # fixed unit, and a scale-free advantage keeps the step size the learning rate's
        adv = ((total - total.mean(1, keepdim=True)) / (total.std(1, keepdim=True) + 1e-6))
        lengths = [len(r) for r in responses]
        n_tokens = _global_sum(sum(lengths), self.dist, self.device)
        loss = -(logp * adv.view(-1, 1)).sum() / max(n_tokens, 1)
        g = lambda v: round(_global_mean(float(v), self.dist, self.device), 4)  # noqa: E731
        metrics = {"proxy": g(proxy.mean()), "kl": g(kl.mean()), "reward": g(total.mean()),
                   "resp_len": round(n_tokens / (len(mine) * self.dist.world_size), 2)}
        sampled = sum(len(p) + n for p, n in zip(prompts, lengths, strict=True))
        # sampling passes each token once; then the reward model, the SFT model, and the
        # policy's forward + backward: 1 + 1 + 1 + 3 passes
        compute = _global_sum(6 * sampled, self.dist, self.device)
        return StepResult(loss=loss * self.dist.world_size, tokens=sampled, metrics=metrics,
                          log_loss=float(loss.detach()) * self.dist.world_size, compute=compute)

    @torch.no_grad()
    def evaluate(self, model, step: int) -> dict:
        """Greedy replies to every dev and test task: their gold and proxy; the KL of sampled
        replies to the dev tasks. A new best dev gold keeps these weights as the peak."""
        out: dict = {}
        for split, tasks in self.held.items():
            got = judged(self.io, model, self.rm, self.world, tasks, self.cfg.max_tokens)
            out[f"gold_{split}"], out[f"proxy_{split}"] = got["gold"], got["proxy"]
        dev = self.held["dev"]
        sampled = self.io.generate(model, dev, self.cfg.temperature, self.cfg.max_tokens,
                                   _seed(f"rlhf-kl:{self.seed}"))
        _, kl = self._kl(unwrap(model), [self.io.prompt(t) for t in dev], sampled)
        out["kl"] = round(float(kl.mean()), 4)
        out = {f"rlhf_{k}": v for k, v in out.items()}
        if out["rlhf_gold_dev"] > self.best:
            self.best = out["rlhf_gold_dev"]
            self._keep_peak(model, step, out)
        return out

    def _keep_peak(self, model, step: int, metrics: dict) -> None:
        from engine.model.checkpoint import save_checkpoint

        if self.peak_dir is None or not self.dist.is_main:
            return
        meta = {**self.peak_meta, "train_stage": "rlhf", "step": step, "done": True,
                "total_steps": self.cfg.steps, "chosen_on": "dev gold",
                "metrics": metrics}
        save_checkpoint(self.peak_dir, unwrap(model), meta)

    def sample(self, model, step: int) -> tuple[str, str]:
        task = self.held["test"][0]
        reply = self.io.generate(model, [task], 0.0, self.cfg.max_tokens, 0)[0]
        return task.prompt, self.io.text(reply)


def _peak_gold(peak_dir: Path | None) -> float:
    """The dev gold of the peak kept so far (a resumed stage), else -inf."""
    from engine.train.loop import read_meta

    meta = read_meta(peak_dir) if peak_dir is not None else None
    return float((meta or {}).get("metrics", {}).get("rlhf_gold_dev", -math.inf))
