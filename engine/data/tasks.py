"""Checkable problems over the embedded world.

RL families: "arith" (column additions and shop word problems), "count_letters", "decimal_cmp".
Eval-only families: "fact_known" (facts about train entities, which SFT drilled: a recall
check, not a held-out one), "fact_heldout" (entities in no SFT row), "unknown" (people who exist
nowhere: the right answer is a refusal), "identity", and "paraphrase" (known facts and sums
asked in test wordings) beside "template" (the same items in the template wording).

Problems are drawn from one split (engine/data/splits.py): RL trains on ``train`` keys, presets are
tuned on ``dev``, the report card speaks of ``test``. Answers are judged by engine/data/judge.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from engine.data import wordings as Wd
from engine.data import world as W
from engine.data.open_tasks import open_tasks
from engine.data.splits import check_split

RL_FAMILIES = ("arith", "count_letters", "decimal_cmp")
FACT_FAMILIES = ("fact_known", "fact_heldout")
FAMILIES = RL_FAMILIES + FACT_FAMILIES + ("unknown", "identity", "paraphrase", "template")


@dataclass(frozen=True)
class Problem:
    family: str
    messages: list[dict] = field(hash=False)  # the user prompt
    answer: str  # the right answer ("" where nothing is checkable)
    kind: str = ""  # the question kind (engine/data/wordings.py): capital, add, count, ...
    rivals: tuple[str, ...] = field(default=(), hash=False)  # other values of a fact's kind
    key: str = ""  # what makes two problems the same problem (for distinct counts)

    @property
    def prompt(self) -> str:
        return self.messages[-1]["content"] if self.messages else ""


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def add_problem(a: int, b: int, text: str, family: str = "arith") -> Problem:
    return Problem(family, _user(text), str(a + b), "add", key=W.add_key(a, b))


def shop_problem(args: tuple, text: str, family: str = "arith") -> Problem:
    return Problem(family, _user(text), str(W.shop_solution(*args[1:])[1]), "shop",
                   key=W.shop_key(*args))


def count_problem(word: str, letter: str, text: str) -> Problem:
    return Problem("count_letters", _user(text), str(word.count(letter)), "count",
                   key=f"{W.count_key(word)}:{letter}")


def dec_problem(x: str, y: str, text: str) -> Problem:
    return Problem("decimal_cmp", _user(text), W.dec_solution(x, y)[1], "dec", key=W.dec_key(x, y))


def fact_problem(world: W.World, fact: W.Fact, text: str, family: str) -> Problem:
    return Problem(family, _user(text), fact.answer, fact.kind, W.rivals(world, fact.kind),
                   key=f"{fact.subject}:{fact.kind}")


def unknown_problem(world: W.World, name: str, kind: str, text: str) -> Problem:
    return Problem("unknown", _user(text), W.IDK, kind, W.rivals(world, kind),
                   key=f"{name}:{kind}")


FILE_FAMILY = "file"  # problems read from a user's file (engine/data/readers.py)


def number_problem(question: str, answer: str, family: str = FILE_FAMILY) -> Problem:
    """A question whose right answer is one number (a GSM8K-style row of a user's file): the
    judge reads it like a sum, whatever the question is about."""
    return Problem(family, _user(question), answer, "number", key=question)


def identity_problem(text: str) -> Problem:
    return Problem("identity", _user(text), "deepdive", "identity", key=text)


# -- drawing problems of one split -------------------------------------------------------------

def _arith(rng: random.Random, split: str, wording: str | None) -> Problem:
    """A sum in a wording of ``wording``'s split (None: the template wording)."""
    wrng = rng if wording else None
    if rng.random() < W.ADD_SHARE:
        a, b = W.draw(rng, W.random_add, W.add_key, split)
        return add_problem(a, b, W.add_question(a, b, wording or "train", wrng))
    args = W.draw(rng, W.random_shop, W.shop_key, split)
    return shop_problem(args, W.shop_question(*args, wording or "train", wrng))


def _count(rng: random.Random, split: str, wording: str | None) -> Problem:
    word, letter = W.draw(rng, W.random_count, W.count_key, split)
    return count_problem(word, letter, W.count_question(word, letter, wording or "train",
                                                       rng if wording else None))


def _dec(rng: random.Random, split: str, wording: str | None) -> Problem:
    x, y = W.draw(rng, W.random_dec, W.dec_key, split)
    return dec_problem(x, y, W.dec_question(x, y, wording or "train", rng if wording else None))


_MAKERS = {"arith": _arith, "count_letters": _count, "decimal_cmp": _dec}


def rl_problems(world: W.World, split: str, n: int, seed: int,
                families: tuple[str, ...] = RL_FAMILIES) -> list[Problem]:
    """n problems cycling through ``families``, keys (and wordings) of ``split``."""
    check_split(split)
    rng = random.Random(f"{world.seed}:{split}:{seed}")
    wording = "train" if split == "train" else None  # dev/test keys: the template wording
    return [_MAKERS[families[i % len(families)]](rng, split, wording) for i in range(n)]


def _distinct(make, n: int, tries: int = 20) -> list[Problem]:
    """Up to n problems with distinct prompts (fewer when the pool is smaller)."""
    out: dict[str, Problem] = {}
    misses = 0
    while len(out) < n and misses < tries * n:
        p = make()
        if p.prompt in out:
            misses += 1
        else:
            out[p.prompt] = p
    return list(out.values())


def eval_problems(world: W.World, family: str, n: int, seed: int = 0,
                  split: str = "test") -> list[Problem]:
    """Up to n distinct problems of one family (see FAMILIES) from ``split``."""
    check_split(split)
    rng = random.Random(f"{world.seed}:eval:{family}:{split}:{seed}")
    if family in _MAKERS:
        return _distinct(lambda: _MAKERS[family](rng, split, None), n)
    if family in FACT_FAMILIES:
        want = "train" if family == "fact_known" else split
        # A language is its country's name + "ish": answerable from the pattern SFT teaches,
        # without knowing anything, so it is no test of held-out knowledge.
        pool = [f for f in W.facts(world) if world.split.get(f.subject) == want
                and not (family == "fact_heldout" and f.kind == "language")]
        pool = rng.sample(pool, min(n, len(pool)))
        return [fact_problem(world, f, f.question(), family) for f in pool]
    if family == "unknown":
        pool = [(name, kind) for name in world.unknown(split) for kind in Wd.PERSON_KINDS]
        pool = rng.sample(pool, min(n, len(pool)))
        return [unknown_problem(world, name, kind, Wd.fill(Wd.template(kind), name=name))
                for name, kind in pool]
    if family == "identity":
        return [identity_problem(t) for t in Wd.templates("identity", split)][:n]
    if family in ("paraphrase", "template"):
        return paraphrase_items(world, n, seed, split)[family == "template"]
    raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")


def paraphrase_items(world: W.World, n: int, seed: int = 0,
                     split: str = "test") -> tuple[list[Problem], list[Problem]]:
    """(paraphrased, template): the same items — known facts and ``split`` sums, half each —
    asked in ``split`` wordings and in the template wording."""
    rng = random.Random(f"{world.seed}:paraphrase:{split}:{seed}")
    known = [f for f in W.facts(world) if world.split.get(f.subject) == "train"]
    para, tmpl = [], []
    for f in rng.sample(known, min(n // 2, len(known))):
        para.append(fact_problem(world, f, f.question(split, rng), "paraphrase"))
        tmpl.append(fact_problem(world, f, f.question(), "template"))
    seen: set[str] = set()
    while len(para) < n:
        a, b = W.draw(rng, W.random_add, W.add_key, split)
        if W.add_key(a, b) in seen:
            continue
        seen.add(W.add_key(a, b))
        para.append(add_problem(a, b, W.add_question(a, b, split, rng), "paraphrase"))
        tmpl.append(add_problem(a, b, W.add_question(a, b), "template"))
    return para, tmpl


def curated_prompts(world: W.World) -> list[Problem]:
    """The Compare pane's fixed prompts, one per story the app tells (test split where held
    out)."""
    known = next(f for f in W.facts(world) if world.split.get(f.subject) == "train")
    held = next(f for f in W.facts(world) if world.split.get(f.subject) == "test")
    nobody = world.unknown("test")[-1]
    emily = ("Emily", 3, W.ITEMS[0], 2, W.ITEMS[1], 2, 3)
    return [
        fact_problem(world, known, known.question(), "fact_known"),
        fact_problem(world, held, held.question(), "fact_heldout"),
        unknown_problem(world, nobody, "lives", Wd.fill(Wd.template("lives"), name=nobody)),
        shop_problem(emily, W.shop_question(*emily)),
        count_problem("strawberry", "r", W.count_question("strawberry", "r")),
        dec_problem("9.11", "9.9", W.dec_question("9.11", "9.9")),
        identity_problem("Who are you?"),
        open_problem(world),
    ]


def open_problem(world: W.World) -> Problem:
    """An unverifiable request (a test task of engine/data/open_tasks.py): nothing to check,
    so the judge says "—"; the place to put SFT, RLHF and RLHF run on side by side."""
    task = next(t for t in open_tasks(world, "test", 10_000) if t.kind == "visit_country")
    return Problem("open", task.messages, "", "open", key=f"open:{task.subject}")
