"""RLHF's over-optimisation on more seeds of one world.

The reward model and RLHF are retrained from a finished run's SFT model under other seeds (other
SFT samples and rater draws for the pairs, other RLHF samples), each into a temporary copy of the
run, and measured as the report card measures them (the split's open tasks, greedy replies):

    python bench/rlhf_seeds.py --run checkpoints/tiny --seeds 1 2

To tune on dev (never on test), start from a named preset and change its settings:

    python bench/rlhf_seeds.py --run RUN --split dev --preset tiny --set rlhf.lr=3e-4 rlhf.steps=60

Prints a line per seed and, last, one JSON object: per seed the RLHF figures and whether gold
fell by the report's margin while the proxy rose; and how many seeds did.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEYS = ("rm_pair_acc", "oracle_self_agreement", "rlhf_gold_sft", "rlhf_gold_peak",
        "rlhf_gold_final", "rlhf_proxy_peak", "rlhf_proxy_final", "rlhf_kl_peak",
        "rlhf_kl_final", "rlhf_peak_step")


def one_seed(run: Path, seed: int, work: Path, split: str, preset_config: dict) -> dict:
    from engine.data.rlhf_report import FALL, rlhf_section
    from engine.data.world import build_world
    from engine.model.checkpoint import read_meta
    from engine.run import RunFolder, world_seed
    from engine.train.pipeline import train

    copy = work / f"seed{seed}"
    source = RunFolder(run)
    source.copy_to(copy, ("tokenizer.json", "base", "sft"))
    info = source.read_info()
    world = world_seed(info)
    info["data"] = {**(info.get("data") or {}), "world_seed": world}
    RunFolder(copy).write_info({**info, "seed": seed, "preset_config": preset_config})
    t0 = time.perf_counter()
    train(copy, stages="reward,rlhf", device="cpu")
    seconds = round(time.perf_counter() - t0, 1)
    max_tokens = int(preset_config["rlhf"]["max_tokens"])
    section = rlhf_section(copy, build_world(world), "cpu", split, max_tokens,
                           lambda folder: read_meta(copy / folder))
    m = {k: section["metrics"].get(k) for k in KEYS}
    fell = (m["rlhf_gold_final"] <= m["rlhf_gold_peak"] - FALL
            and m["rlhf_proxy_final"] > m["rlhf_proxy_peak"])
    return {**m, "over_optimised": fell, "peak_above_sft": m["rlhf_gold_peak"] >
            m["rlhf_gold_sft"], "seconds": seconds,
            "curve": [{k: p.get(k) for k in _curve_keys(split)} for p in section["curve"]]}


def _curve_keys(split: str) -> tuple[str, ...]:
    """The curve's columns for ``split``: never test's on dev; on test, dev's gold as well (the
    peak is chosen on it)."""
    keys = ("step", f"rlhf_proxy_{split}", f"rlhf_gold_{split}", "rlhf_gold_dev", "rlhf_kl")
    return tuple(dict.fromkeys(keys))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(ROOT / "checkpoints" / "tiny"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--split", default="test", choices=("dev", "test"))
    ap.add_argument("--preset", help="train with this preset's settings, not the run's own")
    ap.add_argument("--set", nargs="*", default=[], metavar="STAGE.FIELD=VALUE",
                    help="change a reward/rlhf setting, e.g. rlhf.kl_coef=0.005")
    args = ap.parse_args()
    run = Path(args.run)
    config = _preset_config(run, args.preset, args.set)
    print(json.dumps({k: config[k] for k in ("reward", "rlhf")}), flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            results[seed] = one_seed(run, seed, Path(tmp), args.split, config)
            print(f"seed {seed}: " + json.dumps({k: v for k, v in results[seed].items()
                                                 if k != "curve"}), flush=True)
    print(json.dumps({"run": str(run), "split": args.split, "seeds": results,
                      "over_optimised": sum(r["over_optimised"] for r in results.values()),
                      "peak_above_sft": sum(r["peak_above_sft"] for r in results.values()),
                      "of": len(results)}))


def _preset_config(run: Path, preset: str | None, changes: list[str]) -> dict:
    """The run's preset_config (or ``preset``'s) with ``changes`` made; a change that names no
    setting, or a value of the wrong kind, stops the bench with a message (exit 1)."""
    import dataclasses

    from engine.run import RunFolder
    from engine.train.presets import get_preset, preset_from_dict

    obj = get_preset(preset) if preset else preset_from_dict(RunFolder(run).read_info()
                                                             ["preset_config"])
    for change in changes:
        key, _, value = change.partition("=")
        stage, _, field = key.partition(".")
        cfg = getattr(obj, stage, None) if stage in ("reward", "rlhf") else None
        if cfg is None or field not in {f.name for f in dataclasses.fields(cfg)} or not value:
            sys.exit(f"--set {change!r}: say reward.FIELD=VALUE or rlhf.FIELD=VALUE")
        kind = type(getattr(cfg, field))
        try:
            new = tuple(value.split(",")) if kind is tuple else kind(value)
        except ValueError:
            sys.exit(f"--set {change!r}: {value!r} is not a {kind.__name__}")
        obj = dataclasses.replace(obj, **{stage: dataclasses.replace(cfg, **{field: new})})
    return obj.to_dict()


if __name__ == "__main__":
    main()
