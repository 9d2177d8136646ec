"""Does the base model answer questions about entities it only read about? (dev split)

Tuning aid for the knowledge recipe (engine/data/world.py): asks a run's base model, in the form of
pretraining's QA documents (open user and assistant turns, engine.tokens.chat.Transcript), about
dev-split entities (never quizzed in pretraining) and train entities, and prints the share
answered right by the judge. Prints one
JSON object as its last line. Usage: python bench/knowledge_dev.py --run checkpoints/NAME
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    from engine.data import world as W
    from engine.data.judge import judge
    from engine.data.tasks import fact_problem
    from engine.model.checkpoint import load_run_model
    from engine.model.sampler import SampleSettings, generate_batch
    from engine.run import RunFolder, resolve_run, world_seed
    from engine.tokens.chat import Transcript, render_document

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--stage", default="base")
    args = ap.parse_args()
    run = resolve_run(args.run)
    info = RunFolder(run).read_info()
    world = W.build_world(world_seed(info))
    model, tok, _ = load_run_model(run, args.stage)
    out = {"run": run.name, "stage": args.stage}
    for split in ("train", "dev"):
        fs = [f for f in W.facts(world) if world.split.get(f.subject) == split][:120]
        prompts = [render_document(tok, Transcript(f.question(), "")) for f in fs]
        res = generate_batch(model, prompts, SampleSettings(temperature=0.0, max_tokens=16),
                             stop_ids=[tok.special_id("<|bos|>")])
        texts = [tok.decode(r).split("\n")[0].split("<|")[0] for r in res]
        right = [judge(fact_problem(world, f, f.question(), "fact"), t).correct
                 for f, t in zip(fs, texts, strict=True)]
        out[f"qa_{split}"] = round(sum(right) / len(right), 3)
        out[f"example_{split}"] = f"{fs[0].question()} -> {texts[0]}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
