"""Hidden raters for the world's unverifiable tasks: what "people preferred this reply" means here.

RLHF needs preferences between replies that no exact answer can settle ("Tell a visitor about
Velmor."). deepdive's stand-in for human raters is this oracle. It is never a training reward:
it labels preference pairs for a reward model to learn from (with rater noise), and, apart from
that, scores the "gold" quality the report card measures RLHF against.

Gold quality is what a careful rater cares about:

- true facts of the subject mentioned (each counts, up to three), false ones (a value of the
  same kind that belongs to something else) cost more than a true one gains;
- a friendly tone (a few warm words help; a rater does not reward gushing past two);
- a sensible length (12 to 60 words), and no repeating itself.

A rater comparing two replies prefers the better one, but each judgement flips with probability
``RATER_FLIP``: two raters then disagree on 2·f·(1−f) of clearly different pairs, about 28%,
the share human raters show (InstructGPT's labelers agreed with each other ~73% of the time).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from engine.data import world as W
from engine.data.open_tasks import OpenTask

TONE_WORDS = ("welcome", "lovely", "enjoy", "wonderful", "friendly", "beautiful", "delightful",
              "charming")
LENGTH_BAND = (12, 60)  # words
RATER_FLIP = 0.17
WORD_RE = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class Gold:
    """A reply's gold quality and what it is made of."""

    score: float
    true_facts: int
    false_facts: int
    tone: int
    words: int
    repeated: float  # share of the reply's word trigrams that occur earlier in it


def gold(world: W.World, task: OpenTask, reply: str) -> Gold:
    """The quality a careful rater gives ``reply`` (higher is better; about -2..1)."""
    text = " ".join(WORD_RE.findall(reply.casefold()))
    true = false = 0
    for fact in (f for f in W.facts(world) if f.subject == task.subject):
        said_right = _says(text, fact.answer)
        true += said_right
        wrong = [v for v in _rival_values(world, fact) if v != fact.answer and _says(text, v)]
        false += bool(wrong)
    words = text.split()
    tone = sum(words.count(w) for w in TONE_WORDS)
    repeated = _repeated_share(words)
    return Gold(score(true, false, tone, len(words), repeated), true, false, tone, len(words),
                round(repeated, 4))


def score(true: int, false: int, tone: int, words: int, repeated: float) -> float:
    """Gold quality from what a reply says: true and false facts, tone words, its length in
    words and its repeated share (score(0, 0, ...) is what a rater who knew no facts would
    judge by)."""
    low, high = LENGTH_BAND
    off = max(low - words, words - high, 0) / low  # how far outside the band
    return round(0.25 * min(true, 3) - 0.35 * false + 0.1 * min(tone, 2)
                 - 0.3 * min(off, 2.0) - 0.6 * repeated, 4)


def _says(text: str, value: str) -> bool:
    value = " ".join(WORD_RE.findall(value.casefold()))
    return bool(value) and re.search(rf"\b{re.escape(value)}\b", text) is not None


def _rival_values(world: W.World, fact: W.Fact) -> tuple[str, ...]:
    if fact.kind == "founded":
        return tuple(str(c.founded) for c in world.countries)
    return W.rivals(world, fact.kind)


def _repeated_share(words: list[str]) -> float:
    grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    if not grams:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    again = 0
    for g in grams:
        again += g in seen
        seen.add(g)
    return again / len(grams)


def prefer(world: W.World, task: OpenTask, a: str, b: str, rng: random.Random,
           flip: float = RATER_FLIP) -> int:
    """One rater's choice between replies ``a`` (0) and ``b`` (1): the better one by gold
    quality, a coin toss on a tie, and each judgement flipped with probability ``flip``."""
    ga, gb = gold(world, task, a).score, gold(world, task, b).score
    better = rng.randrange(2) if ga == gb else (0 if ga > gb else 1)
    return 1 - better if rng.random() < flip else better


def self_agreement(world: W.World, pairs: list[tuple[OpenTask, str, str]], seed: int = 0) -> float:
    """How often two independent raters pick the same reply of a pair: the ceiling for any
    reward model's agreement with them."""
    r1, r2 = random.Random(f"rater-a:{seed}"), random.Random(f"rater-b:{seed}")
    same = sum(prefer(world, t, a, b, r1) == prefer(world, t, a, b, r2) for t, a, b in pairs)
    return same / max(len(pairs), 1)
