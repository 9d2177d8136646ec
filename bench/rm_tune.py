"""Tune the reward model on dev: its pair accuracy under other learning rates, steps and pair
counts, against two raters' agreement on the same dev pairs.

The SFT model's samples and the raters' labels are made once (as the ``reward`` stage makes
them, with the run's seed); each variant then trains a fresh reward model from the SFT weights
with the stage's own schedule and optimizer (engine/train/loop.py) and is measured on **dev
pairs only** (the test split is the report card's and is never printed here):

    python bench/rm_tune.py --run RUN --lr 1e-4 3e-4 --steps 150 300 --pairs 12 28

RUN must hold a finished ``sft/`` (with the open-task chats of its preset). Prints a line per
variant and, last, one JSON object with every variant's figures.

``--ceilings`` trains nothing: it prints how often rules that know part of what the raters judge
pick rater A's side of the same dev pairs (the noise-free oracle; fewer false facts; more true
facts; the oracle's score with every fact term zeroed, i.e. a judge of tone, length and
repetition that knows no facts; the longer reply). A reward model that cannot tell true facts
from false ones cannot beat the knowledge-free rule by much.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


TRAINED = ("all", "last_block", "head")  # what --train lets learn; the rest stays the SFT's


def train_variant(task, sft_path: Path, cfg, pairs: list, device, trained: str = "all") -> dict:
    """A reward model trained from the SFT weights on ``pairs`` under ``cfg``, only the
    ``trained`` part of it learning; its dev figures."""
    import torch

    from engine.model.checkpoint import load_checkpoint
    from engine.model.reward import RewardModel, pair_accuracy
    from engine.train.loop import lr_at, make_optimizer

    torch.manual_seed(task.seed)
    sft, _ = load_checkpoint(sft_path, device)
    rm = RewardModel(sft).to(device)
    if trained != "all":
        rm.backbone.requires_grad_(False)
        if trained == "last_block":
            rm.backbone.transformer.h[-1].requires_grad_(True)
            rm.backbone.transformer.ln_f.requires_grad_(True)
    task.cfg, task.pairs = cfg, pairs
    optimizer = make_optimizer(rm, cfg)
    rm.train()
    t0 = time.perf_counter()
    curve = []
    for step in range(cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = task.step(rm, step).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(rm.parameters(), cfg.grad_clip)
        optimizer.step()
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            curve.append((step + 1, round(pair_accuracy(rm, task.held["dev"]["pairs"]), 4)))
            rm.train()
    return {"dev_curve": curve, "pair_acc_dev": curve[-1][1],
            "seconds": round(time.perf_counter() - t0, 1)}


def rule_ceilings(world, held: dict) -> dict:
    """Share of ``held``'s pairs (task, reply a, reply b) where each rule picks rater A's reply
    (ties count half, as in the reward model's pair accuracy). The knowledge-free rule reads
    ``Gold.repeated`` as stored (to 4 places): a tie it sees may be one the oracle breaks."""
    from engine.data import oracle as O

    if not held["texts"]:
        sys.exit("no dev pairs to measure: the SFT model's dev replies never differed")

    def knows_no_facts(g) -> float:
        return O.score(0, 0, g.tone, g.words, g.repeated)

    rules = {"oracle_noise_free": lambda g: g.score, "fewer_false_facts": lambda g: -g.false_facts,
             "more_true_facts": lambda g: g.true_facts, "knows_no_facts": knows_no_facts,
             "longer": lambda g: g.words}
    golds = [(O.gold(world, t, a), O.gold(world, t, b)) for t, a, b in held["texts"]]
    out = {}
    for name, rule in rules.items():
        hits = sum(0.5 if rule(ga) == rule(gb) else float((rule(ga) < rule(gb)) == bool(pick))
                   for (ga, gb), pick in zip(golds, held["labels"], strict=True))
        out[name] = round(hits / len(golds), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-4])
    ap.add_argument("--steps", type=int, nargs="+", default=[150])
    ap.add_argument("--pairs", type=int, nargs="+", default=[12],
                    help="labelled pairs per train task (of the samples' distinct pairs)")
    ap.add_argument("--samples", type=int, default=8, help="SFT samples per train task")
    ap.add_argument("--eval-samples", type=int, help="SFT samples per dev task (default: the "
                    "preset's); all their distinct pairs are measured")
    ap.add_argument("--weight-decay", type=float, nargs="+", default=[0.0])
    ap.add_argument("--train", nargs="+", default=["all"], choices=TRAINED,
                    help="what learns: the whole model, the last block and the head, the head")
    ap.add_argument("--ceilings", action="store_true", help="train nothing: print what simple "
                    "rules reach on the dev pairs")
    ap.add_argument("--preset", help="the preset whose reward settings to start from "
                    "(default: the run's own, from run.json)")
    args = ap.parse_args()

    import torch

    from engine.data.world import build_world
    from engine.model.checkpoint import load_checkpoint
    from engine.run import RunFolder, world_seed
    from engine.tokens.tokenizer import Tokenizer
    from engine.train.presets import get_preset, preset_from_dict
    from engine.train.rlhf import RewardTask

    run = RunFolder(Path(args.run))
    info = run.read_info()
    preset = get_preset(args.preset) if args.preset else preset_from_dict(info["preset_config"])
    world = build_world(world_seed(info))
    tok = Tokenizer.load(Path(args.run) / "tokenizer.json")
    device = torch.device("cpu")
    sft_path = run.model_dir("sft")

    sft, _ = load_checkpoint(sft_path, device)
    base_cfg = dataclasses.replace(preset.reward, samples_per_prompt=args.samples,
                                   pairs_per_prompt=10_000, eval_samples_per_prompt=(
                                       args.eval_samples or preset.reward.eval_samples_per_prompt))
    t0 = time.perf_counter()
    task = RewardTask(tok, world, sft, base_cfg, int(info["seed"]), device)
    by_task = _by_task(task.pairs, tok)
    print(f"sampled and labelled in {time.perf_counter() - t0:.0f} s: {len(task.pairs)} pairs "
          f"over {len(by_task)} train tasks; dev: {len(task.held['dev']['pairs'])} pairs, two "
          f"raters agree on {task.held['dev']['agreement']:.3f}", flush=True)
    if args.ceilings:
        dev = task.held["dev"]
        print(json.dumps({"run": args.run, "split": "dev", "pairs_dev": len(dev["pairs"]),
                          "self_agreement_dev": dev["agreement"], **rule_ceilings(world, dev)}))
        return
    results = []
    for lr, steps, per_task, wd, trained in itertools.product(args.lr, args.steps, args.pairs,
                                                              args.weight_decay, args.train):
        pairs = _per_task(by_task, per_task, int(info["seed"]))
        cfg = dataclasses.replace(base_cfg, lr=lr, steps=steps, weight_decay=wd,
                                  pairs_per_prompt=per_task,
                                  eval_every=max(1, steps // 3))
        row = {"lr": lr, "steps": steps, "pairs_per_task": per_task, "weight_decay": wd,
               "trained": trained, "train_pairs": len(pairs),
               **train_variant(task, sft_path, cfg, pairs, device, trained)}
        results.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"run": args.run, "split": "dev",
                      "self_agreement_dev": task.held["dev"]["agreement"],
                      "variants": results}))


def _by_task(pairs: list, tok) -> dict[tuple, list]:
    """The labelled pairs grouped by their task (the prompt's ids, up to the reply's start)."""
    start = tok.special_id("<|assistant_start|>")
    by_task: dict[tuple, list] = {}
    for pair in pairs:
        chosen = pair[0]
        by_task.setdefault(tuple(chosen[:chosen.index(start) + 1]), []).append(pair)
    return by_task


def _per_task(by_task: dict[tuple, list], n: int, seed: int) -> list:
    """At most ``n`` of each train task's labelled pairs (seeded choice)."""
    rng = random.Random(f"rm-tune:{seed}")
    out = []
    for group in by_task.values():
        out += rng.sample(group, min(n, len(group)))
    return out


if __name__ == "__main__":
    main()
