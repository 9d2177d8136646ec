"""The whole pipeline of a preset, end to end, timed: tokenizer, pretrain, SFT, RL, the
extra-SFT control and the eval, into a temporary run folder (or --run DIR), exactly as
``deepdive train --preset PRESET`` does it.

Reports wall seconds per stage (from the run's own stage_start / stage_end events), the total,
and the key figures of report.json. The machine's load matters: on a shared CPU the timings
are pessimistic.

Usage: python bench/pipeline.py [--preset tiny] [--run DIR] [--seed 0] [--device cpu]
       python bench/pipeline.py --run checkpoints/tiny --summarize   (a finished run's figures,
       e.g. one made by ``deepdive train --preset tiny --run tiny``; total = first to last event)
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY_METRICS = ("format_base", "format_sft", "knowledge_heldout_sft", "fact_known_sft",
               "refusal_unknown_sft", "refusal_known_sft", "false_refusal_sft", "paraphrase_sft",
               "template_sft", "paraphrase_ratio_sft", "arith_labelers", "arith_pass1_sft",
               "arith_pass1_rl", "arith_pass1_sft_control", "arith_passk_sft", "arith_passk_rl",
               "arith_greedy_sft", "arith_greedy_rl", "answer_first_sft", "work_first_sft",
               "count_letters_sft", "count_letters_rl", "decimal_cmp_sft", "decimal_cmp_rl",
               "probe_unknown", "probe_facts", "transfer_arith", "transfer_arith_lo",
               "transfer_arith_hi", "transfer_decimal_cmp", "transfer_decimal_cmp_lo",
               "transfer_decimal_cmp_hi", "transfer_count_letters", "transfer_count_letters_lo",
               "transfer_count_letters_hi", "transfer_open_tasks", "transfer_open_tasks_lo",
               "transfer_open_tasks_hi", "rl_len_start", "rl_len_end",
               "rl_share_work_first_start",
               "rl_share_work_first_end", "sft_data_share_work_first")


def stage_walls(events: list[dict]) -> dict[str, float]:
    """Seconds from each stage_start to its stage_end (summed if a stage ran more than once)."""
    walls: dict[str, float] = {}
    started: dict[str, float] = {}
    for e in events:
        if e["type"] == "stage_start":
            started[e["stage"]] = e["t"]
        elif e["type"] == "stage_end" and e["stage"] in started:
            walls[e["stage"]] = round(walls.get(e["stage"], 0) + e["t"] - started.pop(e["stage"]),
                                      2)
    return walls


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--run", default=None, help="run folder (default: a temporary one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--summarize", action="store_true", help="do not train: report on --run")
    args = ap.parse_args()

    from engine.progress.events import read_events
    from engine.run import RunFolder
    from engine.train.pipeline import train

    tmp = None
    if args.run:
        run_dir = Path(args.run)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="deepdive-bench-"))
        run_dir = tmp / args.preset
    t0 = time.perf_counter()
    try:
        if not args.summarize:
            train(run_dir, preset=args.preset, seed=args.seed, device=args.device,
                  on_event=lambda e: print(_line(e), file=sys.stderr) if _line(e) else None)
        total = time.perf_counter() - t0
        run = RunFolder(run_dir)
        events = read_events(run.events)
        if args.summarize:
            # Time spent in stages, not first-to-last event: a resumed run (or one whose later
            # stages were retrained another day) must not count the hours in between.
            total = sum(stage_walls(events).values())
            record = run.read_info()
            args.preset, args.seed = record["preset"], record["seed"]
        report = json.loads(run.report().read_text(encoding="utf-8"))
        metrics = report.get("metrics", {})
        pre = [e for e in events if e["type"] == "step" and e["stage"] == "pretrain"]
        mfus = [e["mfu"] for e in pre if e.get("mfu") is not None]
        out = {
            "preset": args.preset, "seed": args.seed, "run": str(run_dir),
            "wall_s": stage_walls(events), "total_s": round(total, 2),
            "pretrain_tok_s": _median([e["tok_s"] for e in pre[1:]]),
            "pretrain_mfu": _median(mfus),
            "metrics": {k: metrics[k] for k in KEY_METRICS if k in metrics},
            "n_eval": {k: v for k, v in metrics.items() if k.startswith("n_eval")},
        }
        print(json.dumps(out))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _median(values: list[float]) -> float | None:
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def _line(e: dict) -> str | None:
    if e["type"] in ("stage_end", "eval"):
        figures = {k: v for k, v in (e.get("summary") or e).items()
                   if isinstance(v, int | float) and k not in ("t", "step")}
        return f"{e['type']:<9} {e['stage']:<9} {json.dumps(figures)[:300]}"
    return None


if __name__ == "__main__":
    main()
