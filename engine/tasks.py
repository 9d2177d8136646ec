"""Checkable problems over the embedded world, and their exact verifier.

RL families: "arith" (column additions and shop word problems), "count_letters", "decimal_cmp".
Eval-only families: "fact", "fact_heldout" (entities absent from SFT), "unknown" (people who
exist nowhere: the right answer is a refusal), "identity".

Every checkable response ends with a line "Answer: X"; ``verify`` reads the last one.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from engine import world as W

RL_FAMILIES = ("arith", "count_letters", "decimal_cmp")
FAMILIES = RL_FAMILIES + ("fact", "fact_heldout", "unknown", "identity")
ANSWER_RE = re.compile(r"Answer:[ \t]*([^\n]*)")


@dataclass
class Problem:
    family: str
    messages: list[dict]  # the user prompt
    answer: str  # the exact final answer ("" where nothing is checkable)


def final_answer(response: str) -> str | None:
    """The normalised text after the last 'Answer:', or None when there is none."""
    found = ANSWER_RE.findall(response or "")
    return _norm(found[-1]) if found else None


def _norm(s: str) -> str:
    return s.strip().rstrip(".").replace("$", "").replace(",", "").strip().casefold()


def verify(problem: Problem, response: str) -> float:
    """1.0 for the exact final answer, else 0.0 (wrong, malformed, anything odd). Never raises."""
    try:
        if problem.family == "unknown":  # a refusal anywhere counts: there is nothing to know
            low = (response or "").lower().replace("’", "'")
            return float("don't know" in low or "do not know" in low)
        if problem.family == "identity":
            said = (response or "").lower()
            return float(bool(problem.answer) and problem.answer.lower() in said)
        if not problem.answer:
            return 0.0
        return float(final_answer(response) == _norm(problem.answer))
    except Exception:  # noqa: BLE001 - a verifier that raises would kill an RL run
        return 0.0


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _arith(rng: random.Random, heldout: bool) -> Problem:
    if rng.random() < 0.7:
        a, b = W._draw(rng, W.random_add, W.add_key, heldout)
        return Problem("arith", _user(W.add_question(a, b)), str(a + b))
    args = W._draw(rng, W.random_shop, W.shop_key, heldout)
    return Problem("arith", _user(W.shop_question(*args)), str(W.shop_solution(*args[1:])[1]))


def _count(rng: random.Random, heldout: bool) -> Problem:
    word, letter = W._draw(rng, W.random_count, W.count_key, heldout)
    return Problem("count_letters", _user(W.count_question(word, letter)), str(word.count(letter)))


def _dec(rng: random.Random, heldout: bool) -> Problem:
    x, y = W._draw(rng, W.random_dec, W.dec_key, heldout)
    return Problem("decimal_cmp", _user(W.dec_question(x, y)), W.dec_solution(x, y)[1])


_MAKERS = {"arith": _arith, "count_letters": _count, "decimal_cmp": _dec}


def rl_problems(world: W.World, split: str, n: int, seed: int) -> list[Problem]:
    """n problems cycling through the RL families; "heldout" ones are never trained on."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    rng = random.Random(f"{world.seed}:{split}:{seed}")
    return [_MAKERS[RL_FAMILIES[i % 3]](rng, split == "heldout") for i in range(n)]


def eval_problems(world: W.World, family: str, n: int, seed: int = 0) -> list[Problem]:
    """n held-out problems of one family (see FAMILIES)."""
    rng = random.Random(f"{world.seed}:eval:{family}:{seed}")
    if family in _MAKERS:
        return [_MAKERS[family](rng, True) for _ in range(n)]
    if family in ("fact", "fact_heldout"):
        pool = [f for f in W.facts(world) if (f[0] in world.heldout) == (family == "fact_heldout")]
        return [Problem(family, _user(q), ans) for _, q, _, ans in
                (rng.choice(pool) for _ in range(n))]
    if family == "unknown":
        names = world.unknown_people[len(world.unknown_people) // 2:]  # never seen in SFT
        qs = ["Where does {} live?", "In what year was {} born?", "What is {}'s favourite food?"]
        return [Problem("unknown", _user(rng.choice(qs).format(rng.choice(names))), W.IDK)
                for _ in range(n)]
    if family == "identity":
        qs = ["Who are you?", "What is your name?", "Tell me who you are.", "What are you?"]
        return [Problem("identity", _user(rng.choice(qs)), "deepdive") for _ in range(n)]
    raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")


def fact_completions(world: W.World, split: str = "heldout", n: int = 50,
                     seed: int = 0) -> list[tuple[str, str]]:
    """(document prefix, expected next word) pairs for probing a base model's knowledge.

    split "heldout": SFT-held-out entities; "train": the known ones.
    """
    pool = [(stmt, ans) for subj, _, stmt, ans in W.facts(world)
            if (subj in world.heldout) == (split == "heldout")]
    rng = random.Random(f"{world.seed}:complete:{split}:{seed}")
    return [rng.choice(pool) for _ in range(n)] if pool else []


def curated_prompts(world: W.World) -> list[Problem]:
    """The Compare pane's fixed prompts, one per story the app tells."""
    known = next(f for f in W.facts(world) if f[0] not in world.heldout)
    held = next(f for f in W.facts(world) if f[0] in world.heldout)
    nobody = world.unknown_people[-1]
    emily = ("Emily", 3, W.ITEMS[0], 2, W.ITEMS[1], 2, 3)
    return [
        Problem("fact", _user(known[1]), known[3]),
        Problem("fact_heldout", _user(held[1]), held[3]),
        Problem("unknown", _user(f"Where does {nobody} live?"), W.IDK),
        Problem("arith", _user(W.shop_question(*emily)), str(W.shop_solution(*emily[1:])[1])),
        Problem("count_letters", _user(W.count_question("strawberry", "r")), "3"),
        Problem("decimal_cmp", _user(W.dec_question("9.11", "9.9")), "9.9"),
        Problem("identity", _user("Who are you?"), ""),
    ]
