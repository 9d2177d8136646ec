"""How much of SFT to keep: a run's SFT model merged with its base at several shares, on dev.

WiSE-FT (engine/train/merge.py) needs no training to try: each share is the straight line
between the run's ``base/`` and its SFT weights as trained (a run whose SFT was merged at share
k has them back exactly, up to float rounding: (merged - (1 - k) base) / k). For each share it
asks the chat model the split's questions, greedy, and prints the share answered right per
family: held-out facts, recall of train-entity facts, everyday wordings beside the template
wording, sums, refusals about people who exist nowhere, letter counts, decimals, and the chat
format. Choose on dev; ``--split test`` only reports what a choice did.

Usage: python bench/sft_merge_dev.py --run checkpoints/NAME [--keep 0.8,0.85,0.9,1] [--n 100]
       [--split dev]
The last line is one JSON object: {share: {family: rate}}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FAMILIES = ("fact_heldout", "fact_known", "paraphrase", "template", "arith", "unknown",
            "count_letters", "decimal_cmp")


def main() -> None:
    import torch

    from engine.data import evals as E
    from engine.data import tasks as T
    from engine.data import world as W
    from engine.model.checkpoint import load_run_model
    from engine.run import RunFolder, resolve_run, world_seed
    from engine.train.merge import interpolate

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--keep", default="0.8,0.85,0.9,1.0", help="shares of SFT's weights kept")
    ap.add_argument("--n", type=int, default=100, help="problems per family (distinct)")
    ap.add_argument("--split", default="dev", choices=("dev", "test"))
    args = ap.parse_args()
    run = resolve_run(args.run)
    world = W.build_world(world_seed(RunFolder(run).read_info()))
    model, tok, meta = load_run_model(run, "sft")
    base = load_run_model(run, "base")[0].state_dict()
    was = float(meta.get("merged_with_base", 1.0))  # the SFT as trained, before its merge
    sft = {k: (v - (1 - was) * base[k]) / was for k, v in model.state_dict().items()}
    problems = {f: T.eval_problems(world, f, args.n, 0, args.split) for f in FAMILIES}
    budgets = E.token_budgets(tok, world, model.config.block_size)
    out: dict[str, dict] = {}
    print(f"{'keep':>5} " + " ".join(f"{f[:12]:>12}" for f in FAMILIES) + "  format")
    for keep in (float(k) for k in args.keep.split(",")):
        model.load_state_dict(sft)
        interpolate(model, base, keep)
        model.eval()
        row, formats = {}, []
        with torch.no_grad():
            for fam, probs in problems.items():
                rows = E.chat_answers(model, tok, probs, budgets[fam], 0.0, 0)
                row[fam] = round(sum(r["correct"] for r in rows) / len(rows), 3)
                formats += [r["format"] for r in rows]
        row["format"] = round(sum(formats) / len(formats), 3)
        row["n"] = {f: len(p) for f, p in problems.items()}
        out[str(keep)] = row
        print(f"{keep:>5} " + " ".join(f"{row[f]:>12.0%}" for f in FAMILIES)
              + f"  {row['format']:.0%}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
