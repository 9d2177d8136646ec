"""How much of a pretraining step is data loading, with a user's token shard in the stream.

Builds a token shard of generated text files (engine/data/shards.py, the first call tokenizes,
a second call must reuse the cache), then runs the preset's pretraining steps with that shard
appended to the world's stream and times ``PretrainTask.batch`` (the data side: drawing the
step's windows) against the whole step (batch, forward, backward, AdamW). Issue 12's goal:
data time under 5% of step time on CPU tiny.

Usage: python bench/data_time.py [--preset tiny] [--steps 20] [--mb 4]
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def write_corpus(folder: Path, megabytes: float, seed: int = 0) -> Path:
    """Plain-text documents of made-up sentences, ``megabytes`` in all, in a few files."""
    rng = random.Random(seed)
    words = ("river city north trade old market bridge winter song harbour stone field quiet "
             "people built long road light small green").split()
    folder.mkdir(parents=True, exist_ok=True)
    per_file = int(megabytes * 1_000_000 / 4)
    for i in range(4):
        docs, size = [], 0
        while size < per_file:
            doc = " ".join(" ".join(rng.choices(words, k=12)) + "." for _ in range(8))
            docs.append(doc)
            size += len(doc) + 5
        (folder / f"part{i}.txt").write_text("\n---\n".join(docs), encoding="utf-8")
    return folder


def main() -> None:
    import torch

    from engine.data.shards import token_shard
    from engine.data.world import build_world
    from engine.model.gpt import GPT, GPTConfig
    from engine.tokens.tokenizer import train_bpe
    from engine.train.loop import make_optimizer
    from engine.train.pipeline import training_data
    from engine.train.presets import get_preset
    from engine.train.pretrain import PretrainTask

    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--mb", type=float, default=4.0)
    args = ap.parse_args()
    p = get_preset(args.preset)
    world = build_world(0)
    docs = training_data("pretrain", p, world, 0)["documents"]
    tok = train_bpe(docs, p.vocab_size)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp) / "corpus", args.mb)
        t0 = time.perf_counter()
        shard = token_shard(corpus, tok, cache_dir=Path(tmp) / "cache")
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        shard = token_shard(corpus, tok, cache_dir=Path(tmp) / "cache")
        reuse_s = time.perf_counter() - t0
        # the shard's memmaps, as the pipeline passes them: a batch reads its own windows
        task = PretrainTask(tok, docs, p.pretrain, 0, p.val_frac, torch.device("cpu"),
                            extra=shard.split(p.val_frac))
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=tok.n_vocab, **p.model))
        opt = make_optimizer(model, p.pretrain)
        data_s = step_s = 0.0
        for step in range(args.steps + 2):
            t0 = time.perf_counter()
            task.batch(step)
            t1 = time.perf_counter()
            res = task.step(model, step)  # draws the same windows again (counted in the step)
            res.loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            t2 = time.perf_counter()
            if step >= 2:  # warm-up steps are not counted
                data_s += t1 - t0
                step_s += t2 - t1
    print(json.dumps({"preset": args.preset, "steps": args.steps,
                      "shard_tokens": len(shard.tokens), "shard_build_s": round(build_s, 2),
                      "shard_reused": shard.reused, "shard_reuse_s": round(reuse_s, 3),
                      "data_ms_per_step": round(1000 * data_s / args.steps, 3),
                      "step_ms": round(1000 * step_s / args.steps, 1),
                      "data_share": round(data_s / step_s, 5)}))


if __name__ == "__main__":
    main()
