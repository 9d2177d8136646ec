"""Train / dev / test: what stages learn from, what presets are tuned on, what the report says.

Three things are split, each the same way in every process (hashes and seeded draws only):

- **entities** (countries, people, animals): ``train`` ones are asked about in SFT; ``dev`` and
  ``test`` ones appear in pretraining documents only ("held out": does SFT unlock knowledge that
  pretraining stored?). People who exist nowhere are split too: ``train`` names are the ones SFT
  teaches "I don't know" on, ``dev`` / ``test`` names are only ever asked in evaluation.
- **problem keys** (a sum, a word whose letters are counted, a pair of decimals): a key's hash
  picks its split; a stage draws only keys of its own split.
- **wordings** of questions: engine/data/wordings.py lists each kind's templates per split.

Presets are tuned on ``dev``; the report card is computed on ``test``. tests/test_leaks.py checks
the rows every stage really trains on against these.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable

SPLITS = ("train", "dev", "test")
TEST_FRAC, DEV_FRAC = 0.2, 0.1


def key_split(key: str) -> str:
    """A problem key's split: a stable 20% test, 10% dev, 70% train bucket."""
    bucket = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 10
    return "test" if bucket < 2 else "dev" if bucket == 2 else "train"


def entity_splits(names: Iterable[str], rng: random.Random) -> dict[str, str]:
    """A seeded 20% test, 10% dev (each at least one), rest train split of ``names``."""
    names = list(names)
    order = rng.sample(names, len(names))
    n_test = max(1, round(len(names) * TEST_FRAC))
    n_dev = max(1, round(len(names) * DEV_FRAC))
    out = {n: "test" for n in order[:n_test]}
    out |= {n: "dev" for n in order[n_test: n_test + n_dev]}
    out |= {n: "train" for n in order[n_test + n_dev:]}
    return out


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return split
