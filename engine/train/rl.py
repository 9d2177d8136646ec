"""Reinforcement learning with a verifier: on-policy, GRPO-style, as nanochat does it.

Each step draws ``batch_size`` training problems (seeded by step), samples ``group`` answers to
each from the current model, and scores every answer with the task's exact verifier
(``engine.data.tasks.verify``: 1 for the right final answer, else 0). An answer's advantage is its
reward minus its group's mean reward: better than its siblings -> pushed up, worse -> pushed
down, a group that is all right or all wrong teaches nothing. The loss is
``-sum(advantage * log p(token))`` over response tokens, divided by the number of response
tokens (token-level normalisation). No KL term, no reference model, no ratio clipping: every
sample comes from the model being updated, so the plain policy gradient is the right one.
"""

from __future__ import annotations

import random
from collections import defaultdict

import torch
import torch.nn.functional as F

from engine.train.distributed import DistInfo, unwrap
from engine.train.loop import StepResult
from engine.train.presets import RLConfig

PAD_ID = 0


class RlTask:
    SALT = 3

    def __init__(self, tok, train_problems: list, eval_problems: list, cfg: RLConfig, seed: int,
                 device: torch.device, dist: DistInfo | None = None,
                 test_problems: list | None = None):
        if not train_problems:
            raise ValueError("no RL training problems")
        self.tok, self.cfg, self.seed, self.device = tok, cfg, seed, device
        self.dist = dist or DistInfo()
        self.train, self.heldout = train_problems, eval_problems
        # test problems of the families practised: their curve shows whether RL with a verifier
        # keeps its accuracy as it runs on (the RLHF contrast); nothing is chosen on them
        self.test = test_problems or []
        self.end = tok.special_id("<|assistant_end|>")

    def _prompt(self, problem) -> list[int]:
        from engine.tokens.chat import render_prompt

        return render_prompt(self.tok, problem.messages)

    def _respond(self, model, problems: list, settings) -> list[list[int]]:
        from engine.model.sampler import generate_batch

        return generate_batch(unwrap(model), [self._prompt(p) for p in problems], settings,
                              stop_ids=[self.end])

    def _text(self, ids: list[int]) -> str:
        return self.tok.decode([t for t in ids if t != self.end])

    def step(self, model, step: int) -> StepResult:
        from engine.data.judge import answer_way, verify
        from engine.model.sampler import SampleSettings

        cfg, G = self.cfg, self.cfg.group
        rng = random.Random(self.seed * 7_919 + self.SALT * 104_729 + step)
        problems = [self.train[rng.randrange(len(self.train))] for _ in range(cfg.batch_size)]
        mine = problems[self.dist.shard(len(problems))]
        repeated = [p for p in mine for _ in range(G)]
        settings = SampleSettings(temperature=cfg.temperature, top_k=cfg.top_k,
                                  max_tokens=cfg.max_tokens,
                                  seed=(self.seed * 1_000_003 + step * 31 + self.dist.rank) % 2**62)
        responses = self._respond(model, repeated, settings)
        rewards = torch.tensor([verify(p, self._text(r)) for p, r in zip(repeated, responses,
                                                                          strict=True)])
        groups = rewards.view(len(mine), G)
        adv = (groups - groups.mean(dim=1, keepdim=True)).view(-1)
        lengths = [len(r) for r in responses]
        n_tokens = _global_sum(sum(lengths), self.dist, self.device)
        metrics = {
            "reward": round(_global_mean(float(rewards.mean()), self.dist, self.device), 4),
            "pass_at_group": round(_global_mean(float((groups.max(dim=1).values > 0).float()
                                                      .mean()), self.dist, self.device), 4),
            "resp_len": round(n_tokens / (len(rewards) * self.dist.world_size), 2),
        }
        metrics["pass1"] = metrics["reward"]  # a sampled answer's chance to be right
        # how the replies go about it: written work before the answer, or the answer first
        # (a share of the replies that state an answer), and how many state none
        ways = [answer_way(self._text(r)) for r in responses]
        answered = _global_sum(len(ways) - ways.count("no_answer"), self.dist, self.device)
        work_first = _global_sum(ways.count("work_first"), self.dist, self.device)
        metrics["work_first"] = round(work_first / answered, 4) if answered else None
        metrics["no_answer"] = round(1 - answered / (len(ways) * self.dist.world_size), 4)
        prompts = [self._prompt(p) for p in repeated]
        keep = [i for i in range(len(repeated)) if adv[i] != 0 and lengths[i] > 0]
        sampled_tokens = sum(len(p) + n for p, n in zip(prompts, lengths, strict=True))
        if not keep:
            if not self.dist.enabled:
                return StepResult(loss=None, tokens=sampled_tokens, metrics=metrics,
                                  compute=_global_sum(sampled_tokens, self.dist, self.device))
            keep = [0]  # every DDP rank must run backward; this row's advantage is 0
        loss = self._pg_loss(model, [prompts[i] for i in keep], [responses[i] for i in keep],
                             adv[keep].to(self.device), max(n_tokens, 1))
        # sampling passes every token forward once (a KV cache); the update forward + backward
        trained = sum(len(prompts[i]) + lengths[i] for i in keep)
        compute = _global_sum(sampled_tokens + 3 * trained, self.dist, self.device)
        return StepResult(loss=loss * self.dist.world_size, tokens=sampled_tokens,
                          metrics=metrics, log_loss=float(loss.detach()) * self.dist.world_size,
                          compute=compute)

    def _pg_loss(self, model, prompts: list[list[int]], responses: list[list[int]],
                 adv: torch.Tensor, n_tokens: int) -> torch.Tensor:
        """-sum(adv * log p(response token)) / n_tokens, in one padded forward pass."""
        logp, _ = response_logprobs(model, prompts, responses, self.device)
        return -(logp * adv[:, None]).sum() / n_tokens

    @torch.no_grad()
    def evaluate(self, model, step: int) -> dict:
        """Greedy pass@1 on the held-out (dev) problems, overall and per family; and on the
        test problems of the practised families."""
        if not self.heldout:
            return {}
        by_family = self._greedy_scores(model, self.heldout)
        scores = [s for v in by_family.values() for s in v]
        out = {"heldout_pass1": round(sum(scores) / len(scores), 4)}
        for fam, v in sorted(by_family.items()):
            out[f"heldout_pass1_{fam}"] = round(sum(v) / len(v), 4)
        if self.test:
            scores = [s for v in self._greedy_scores(model, self.test).values() for s in v]
            out["test_pass1"] = round(sum(scores) / len(scores), 4)
        return out

    def _greedy_scores(self, model, problems: list) -> dict[str, list[float]]:
        from engine.data.judge import verify
        from engine.model.sampler import SampleSettings

        settings = SampleSettings(temperature=0.0, max_tokens=self.cfg.max_tokens)
        by_family: dict[str, list[float]] = defaultdict(list)
        for i in range(0, len(problems), 64):
            chunk = problems[i: i + 64]
            for p, r in zip(chunk, self._respond(model, chunk, settings), strict=True):
                by_family[p.family].append(verify(p, self._text(r)))
        return by_family

    def sample(self, model, step: int) -> tuple[str, str] | None:
        from engine.model.sampler import SampleSettings

        if not self.heldout:
            return None
        p = self.heldout[0]
        out = self._respond(model, [p], SampleSettings(temperature=0.0,
                                                        max_tokens=self.cfg.max_tokens))[0]
        user = next((m["content"] for m in p.messages if m["role"] == "user"), "")
        return user, self._text(out)


def response_logprobs(model, prompts: list[list[int]], responses: list[list[int]],
                      device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """log p of every response token under ``model`` given what precedes it, (B, T), 0 where
    there is no response token, and the mask of those that are; one padded forward pass (a
    sequence longer than the context keeps its end)."""
    from engine.model.device import autocast

    block = unwrap(model).config.block_size
    seqs = [(p + r)[-(block + 1):] for p, r in zip(prompts, responses, strict=True)]
    T = max(len(s) for s in seqs) - 1
    x = torch.full((len(seqs), T), PAD_ID, dtype=torch.long)
    y = torch.full((len(seqs), T), -1, dtype=torch.long)
    for row, (s, r) in enumerate(zip(seqs, responses, strict=True)):
        x[row, : len(s) - 1] = torch.tensor(s[:-1])
        n_resp = min(len(r), len(s) - 1)
        y[row, len(s) - 1 - n_resp: len(s) - 1] = torch.tensor(s[len(s) - n_resp:])
    x, y = x.to(device), y.to(device)
    with autocast(device):
        logits, _ = model(x)
    nll = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.view(-1),
                          ignore_index=-1, reduction="none").view(len(seqs), T)
    return -nll, y != -1


def _global_sum(value: int, dist: DistInfo, device: torch.device) -> int:
    if not dist.enabled:
        return value
    import torch.distributed as tdist

    t = torch.tensor([value], dtype=torch.long, device=device)
    tdist.all_reduce(t)
    return int(t.item())


def _global_mean(value: float, dist: DistInfo, device: torch.device) -> float:
    from engine.train.distributed import all_reduce_mean

    return all_reduce_mean(value, dist, device)
