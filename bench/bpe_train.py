"""BPE training speed: our incremental trainer vs Hugging Face tokenizers (Rust) vs naive Python.

- seconds: ``engine.tokens.tokenizer.train_bpe`` on ~--mb MB of generated English-like text, vocab
  --vocab-size (chunk counting, merges and building the tiktoken Encoding all included).
- hf_seconds: HF ``tokenizers`` ByteLevel BPE, same text, same vocab size (null if not installed).
  It also splits text (GPT-2's pattern) and counts words first, so the work is comparable.
- ratio: seconds / hf_seconds. Goal <= 3.
- cpu_seconds, hf_cpu_seconds: CPU time of each (HF's counts all its threads): on a shared
  machine wall times swing with the load, CPU time much less.
- naive_est_seconds: a recount-everything trainer (every chunk occurrence kept, all pairs
  recounted and every sequence rewritten per merge, the way a first BPE is usually written) timed
  for --naive-merges merges on a 1 MB slice, extrapolated linearly to all merges on all the text.
- merges_equal_reference: on a small slice, our merges equal the slow reference trainer's.

The text is made here, deterministically (no download): Zipf-distributed words, common English
words plus pronounceable invented ones, in sentences with capitals, punctuation, numbers and
paragraphs, so there are many distinct chunks as in real prose.

Usage: python bench/bpe_train.py [--mb 10] [--vocab-size 4096] [--profile]
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import pstats
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COMMON = (
    "the of and to a in is it you that he was for on are with as I his they be at one have "
    "this from or had by hot word but what some we can out other were all there when up use "
    "your how said an each she which do their time if will way about many then them write "
    "would like so these her long make thing see him two has look more day could go come did "
    "number sound no most people my over know water than call first who may down side been "
    "now find any new work part take get place made live where after back little only round "
    "man year came show every good me give our under name very through just form sentence "
    "great think say help low line differ turn cause much mean before move right boy old too "
    "same tell does set three want air well also play small end put home read hand port large "
    "spell add even land here must big high such follow act why ask men change went light kind"
).split()
ONSETS = ("", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v",
          "w", "br", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "sl", "st", "str", "th", "tr", "ch")
VOWELS = ("a", "e", "i", "o", "u", "ea", "ou", "ai", "ee", "oo", "y")
CODAS = ("", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "rt", "ll", "nt", "sh")
SUFFIXES = ("", "", "", "s", "ed", "ing", "er", "ly", "tion", "ness", "able")


def make_text(mb: float, seed: int = 0) -> list[str]:
    """About mb MB of English-like paragraphs (one string each), the same for the same seed."""
    rng = random.Random(seed)
    invented = set()
    while len(invented) < 30000:
        word = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                       for _ in range(rng.choice((1, 1, 2, 2, 2, 3))))
        invented.add(word + rng.choice(SUFFIXES))
    words = COMMON + sorted(invented)
    rng.shuffle(words[len(COMMON):])
    # Zipf: the k-th word is drawn with weight 1/(k+1), as word frequencies in English run.
    cum = list(itertools.accumulate(1.0 / (k + 1) for k in range(len(words))))
    target, size, docs = int(mb * 1_000_000), 0, []
    while size < target:
        sentences = []
        for _ in range(rng.randint(2, 8)):
            n = rng.randint(4, 22)
            ws = rng.choices(words, cum_weights=cum, k=n)
            if rng.random() < 0.15:  # a number, cut digit by digit by our split pattern
                ws[rng.randrange(n)] = str(rng.choice((rng.randint(0, 99), rng.randint(100, 9999),
                                                       rng.randint(1900, 2030))))
            if rng.random() < 0.2:
                k = rng.randrange(1, n)
                ws[k] += rng.choice((",", ",", ";", ":"))
            s = " ".join(ws)
            sentences.append(s[0].upper() + s[1:] + rng.choice((".", ".", ".", "?", "!")))
        doc = " ".join(sentences) + "\n\n"
        docs.append(doc)
        size += len(doc)
    return docs


def naive_merges(texts: list[str], n_merges: int) -> float:
    """Seconds per merge of a recount-everything trainer (minbpe-style, with the regex split)."""
    from engine.tokens.bpe import merge_word, split_chunks

    seqs = [list(c.encode("utf-8")) for t in texts for c in split_chunks(t)]
    t0 = time.perf_counter()
    for k in range(n_merges):
        stats: Counter[tuple[int, int]] = Counter()
        for s in seqs:
            stats.update(zip(s, s[1:], strict=False))
        a, b = max(stats, key=stats.get)
        seqs = [merge_word(s, a, b, 256 + k) for s in seqs]
    return (time.perf_counter() - t0) / n_merges


def hf_train(texts: list[str], vocab_size: int) -> tuple[float, float] | None:
    try:
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    except ImportError:
        return None
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    t0, c0 = time.perf_counter(), time.process_time()
    tk.train_from_iterator(texts, trainer)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert tk.get_vocab_size() >= vocab_size * 0.9, tk.get_vocab_size()
    return seconds, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=10.0, help="Megabytes of text (default 10).")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--naive-merges", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="cProfile our trainer (top 20).")
    args = ap.parse_args()

    from engine.tokens import bpe
    from engine.tokens.tokenizer import train_bpe

    t0 = time.perf_counter()
    texts = make_text(args.mb)
    n_bytes = sum(len(t) for t in texts)
    print(f"text: {n_bytes / 1e6:.2f} MB, {len(texts)} paragraphs, made in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)

    small = make_text(0.05, seed=1)
    counts = bpe.count_chunks(small)
    equal = bpe.train_merges(counts, 150) == bpe.train_merges_reference(counts, 150)

    profiler = cProfile.Profile() if args.profile else None
    t0, c0 = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    tok = train_bpe(texts, args.vocab_size)
    if profiler:
        profiler.disable()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"ours: {seconds:.2f} s, vocab {tok.n_vocab}", file=sys.stderr)
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(20)

    hf_seconds, hf_cpu = hf_train(texts, args.vocab_size) or (None, None)
    print(f"hf: {hf_seconds} s", file=sys.stderr)

    # the naive trainer on a 1 MB slice (or all of it, if smaller), extrapolated
    slice_, size = [], 0
    for t in texts:
        if size >= 1_000_000:
            break
        slice_.append(t)
        size += len(t)
    per_merge = naive_merges(slice_, args.naive_merges)
    n_merges = tok.n_vocab - 256 - len(tok.specials)
    naive_est = per_merge * n_merges * (n_bytes / size)
    print(f"naive: {per_merge:.2f} s/merge on {size / 1e6:.2f} MB", file=sys.stderr)

    print(json.dumps({
        "seconds": round(seconds, 2),
        "hf_seconds": round(hf_seconds, 2) if hf_seconds is not None else None,
        "ratio": round(seconds / hf_seconds, 2) if hf_seconds else None,
        "naive_est_seconds": round(naive_est, 1),
        "cpu_seconds": round(cpu, 2),
        "hf_cpu_seconds": round(hf_cpu, 2) if hf_cpu is not None else None,
        "mb": round(n_bytes / 1e6, 2),
        "vocab_size": args.vocab_size,
        "merges_equal_reference": equal,
    }))


if __name__ == "__main__":
    main()
