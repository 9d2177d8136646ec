"""Tune RL with the verifier on dev: sampled pass@1 on dev sums after RL under other settings.

RL is retrained from a finished run's SFT model into a temporary copy of the run, once per
variant, and each RL model (and the SFT model, once) answers the **dev** sums the way the report
card answers test ones: ``--samples`` replies at temperature 1 per problem, pass@1 the share
right. Only dev figures are printed (the RL stage's own periodic eval still logs its test curve
into the temporary copy, which is thrown away unread):

    python bench/rl_dev.py --run RUN --set "" "rl.lr=1e-4" "rl.lr=1e-4,rl.steps=60"

Each ``--set`` is one variant, a comma-separated list of rl.FIELD=VALUE of a number field
("" is the preset as it is; a tuple field takes names joined by "+":
rl.families=arith+decimal_cmp); ``--seed`` trains RL under another seed than the run's. Prints a
line per variant and, last, one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def dev_pass1(model, tok, problems: list, max_tokens: int, samples: int) -> float:
    """The share of ``samples`` temperature-1 replies per problem that the judge marks right."""
    import torch

    from engine.data import evals as E

    with torch.no_grad():
        rows = E.chat_answers(model.eval(), tok, [p for p in problems for _ in range(samples)],
                              max_tokens, 1.0, 7)
    return round(sum(r["correct"] for r in rows) / len(rows), 4)


def variant(preset, spec: str):
    """``preset`` with the rl settings of ``spec`` ("rl.lr=1e-4,rl.steps=60")."""
    changes = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        stage, _, name = key.partition(".")
        if stage != "rl" or not value:
            sys.exit(f"--set {item!r}: say rl.FIELD=VALUE with a field of RLConfig")
        kind = type(getattr(preset.rl, name, None))
        if kind is tuple:  # families: rl.families=arith+decimal_cmp
            changes[name] = tuple(value.split("+"))
            continue
        if kind not in (int, float):
            sys.exit(f"--set {item!r}: only number and tuple fields of RLConfig can be set here")
        try:
            changes[name] = kind(value)
        except ValueError:
            sys.exit(f"--set {item!r}: {value!r} is not a {kind.__name__}")
    return dataclasses.replace(preset, rl=dataclasses.replace(preset.rl, **changes))


def main() -> None:
    from engine.data import evals as E
    from engine.data import tasks as T
    from engine.data.world import build_world
    from engine.model.checkpoint import load_run_model
    from engine.run import RunFolder, resolve_run, world_seed
    from engine.train.pipeline import train
    from engine.train.presets import preset_from_dict

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--set", nargs="+", default=[""], metavar="SPEC")
    ap.add_argument("--n", type=int, default=100, help="distinct dev sums")
    ap.add_argument("--samples", type=int, default=8, help="replies per problem")
    ap.add_argument("--seed", type=int, help="RL's seed (default: the run's)")
    args = ap.parse_args()
    run = resolve_run(args.run)
    info = RunFolder(run).read_info()
    if "preset_config" not in info:
        sys.exit(f"{run} holds no run.json with a preset: not a run folder")
    if args.seed is not None:  # the world stays the run's; only RL's draws change
        info = {**info, "seed": args.seed,
                "data": {**(info.get("data") or {}), "world_seed": world_seed(info)}}
    preset = preset_from_dict(info["preset_config"])
    world = build_world(world_seed(info))
    problems = T.eval_problems(world, "arith", args.n, 0, "dev")
    sft, tok, _ = load_run_model(run, "sft", device="cpu")
    budget = E.token_budgets(tok, world, sft.config.block_size)["arith"]
    out = {"run": str(run), "split": "dev", "n": len(problems), "samples": args.samples,
           "sft_pass1": dev_pass1(sft, tok, problems, budget, args.samples), "variants": {}}
    print(f"SFT: dev pass@1 {out['sft_pass1']:.3f} ({len(problems)} sums)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i, spec in enumerate(args.set):
            p = variant(preset, spec)
            copy = Path(tmp) / f"v{i}"
            fork = RunFolder(run).copy_to(copy, ("tokenizer.json", "base", "sft"))
            fork.write_info({**info, "preset_config": p.to_dict()})
            t0 = time.perf_counter()
            train(copy, stages="rl", device="cpu")
            rl, _, _ = load_run_model(copy, "rl", device="cpu")
            row = {"pass1": dev_pass1(rl, tok, problems, budget, args.samples),
                   "seconds": round(time.perf_counter() - t0, 1)}
            out["variants"][spec or "preset"] = row
            print(f"{spec or 'preset'}: " + json.dumps(row), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
