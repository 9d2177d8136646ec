"""The one judge: every ✓/✗ a person sees and every number on the report card comes from here.

``judge(problem, reply)`` reads what a reply *states*, not one tail of it:

- sums, letter counts, decimals: the answers it gives (every ``Answer:`` line; a reply without
  one, such as a few-shot base model's, is read by its last number). Two different answers in one
  reply are a contradiction, and a contradiction is wrong whichever of them is right.
- facts: the values it names of the asked kind (cities for a capital, years for a birth, ...).
  Right only when it names the true one and no other; a refusal is not an answer.
- people who exist nowhere: right only when it refuses and invents nothing.
- identity: right when it says its name.

The RL reward (``engine.data.tasks.verify``), the report card (engine/data/evals.py), the Compare
and Sample panes all call it, so a mark on screen and a number in the report cannot disagree.
``recognise(world, text)`` turns a question a person typed into a Problem when the engine knows
the wording (engine/data/wordings.py); anything else is honestly "not checkable".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from engine.data import wordings as Wd
from engine.data import world as W
from engine.data.tasks import (
    Problem,
    add_problem,
    count_problem,
    dec_problem,
    fact_problem,
    identity_problem,
    shop_problem,
    unknown_problem,
)

ANSWER_RE = re.compile(r"Answer:[ \t]*([^\n]*)")
NUMBER_RE = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")
YEAR_RE = re.compile(r"(?<!\d)(?<!\d\.)\d{4}(?!\d|\.\d)")
REFUSAL_RE = re.compile(r"\b(?:don'?t|do not|dont|cannot|can't) (?:know|say)\b|\bno idea\b|"
                        r"\bnot sure\b|\bnever heard\b", re.IGNORECASE)
NUMERIC_KINDS = ("add", "shop", "count", "dec", "number")  # number: a user file's problems


@dataclass(frozen=True)
class Verdict:
    correct: bool | None  # None: nothing to check
    reason: str  # what a person is shown: "answers 81", "says Jukami, also Darzothi", ...

    @property
    def mark(self) -> str:
        return "—" if self.correct is None else "✓" if self.correct else "✗"


NOT_CHECKABLE = Verdict(None, "not checkable")


def is_refusal(text: str | None) -> bool:
    """One matcher for "I don't know" and its kin, for every refusal metric."""
    return bool(REFUSAL_RE.search((text or "").replace("’", "'")))


def judge(problem: Problem | None, reply: str | None) -> Verdict:
    """The verdict on ``reply`` as an answer to ``problem``. Never raises."""
    if problem is None or not problem.answer:
        return NOT_CHECKABLE
    text = reply or ""
    try:
        if problem.family == "unknown":
            return _judge_unknown(problem, text)
        if problem.family == "identity":
            ok = problem.answer.casefold() in text.casefold()
            return Verdict(ok, "says its name" if ok else f"does not say {problem.answer}")
        if problem.kind in NUMERIC_KINDS or problem.family in ("arith", "count_letters",
                                                                "decimal_cmp"):
            return _judge_numeric(problem, text)
        return _judge_fact(problem, text)
    except Exception as e:  # noqa: BLE001 - a judge that raises would kill an RL run
        return Verdict(False, f"unreadable reply ({type(e).__name__})")


def verify(problem: Problem, response: str | None) -> float:
    """1.0 when the judge marks the response right, else 0.0: the RL reward."""
    return 1.0 if judge(problem, response).correct else 0.0


def works_first(reply: str | None) -> bool:
    """The reply writes something before it states its answer (the column-by-column work, the
    spelling, the aligned decimals ...), rather than opening with the answer."""
    lines = [ln.strip() for ln in (reply or "").strip().splitlines() if ln.strip()]
    return len(lines) > 1 and not ANSWER_RE.match(lines[0])


def answer_way(reply: str | None) -> str:
    """How a reply goes about it: "work_first" (work, then the answer), "answer_first", or
    "no_answer" (it states none: cut off by the token budget, empty, or off topic), so that a
    truncated reply is not taken for one that answers first."""
    if not stated_answers(reply or ""):
        return "no_answer"
    return "work_first" if works_first(reply) else "answer_first"


# -- numbers ------------------------------------------------------------------------------------

def _value(s: str) -> str:
    """A stated answer as comparable text: the first number in it, exactly (9.90 == 9.9), else
    the text."""
    s = s.replace("$", "").strip().rstrip(".").strip()
    if m := NUMBER_RE.search(s):
        return str(Decimal(m[0].replace(",", "")).normalize())
    return s.casefold()


# A reply without "Answer:" states its answer in a closing statement: "23 + 58 = 81",
# "The total is $12.", "9.9 is larger." A number that only repeats the question or a step of
# the work ("Which is larger, 9.11 or 9.9?", "r is at positions 3.") states nothing.
CLOSING_RE = re.compile(r"(?:^|=|\bis|\bare|\bequals|\bmakes|\bget|\bappears|\btotal:?)\s*\$?"
                        r"(-?\d[\d,]*(?:\.\d+)?)\s*(?:dollars|times)?\s*[.!]?\s*$", re.IGNORECASE)
LARGER_RE = re.compile(r"(-?\d+(?:\.\d+)?) is (?:the )?(?:larger|bigger|greater)\b", re.IGNORECASE)


def stated_answers(text: str, kind: str = "") -> list[str]:
    """What a reply gives as its answer: every ``Answer:`` value, else a closing statement."""
    found = [a for a in ANSWER_RE.findall(text) if a.strip()]
    if not found:
        if kind == "dec" and (m := LARGER_RE.findall(text)):
            found = m[-1:]
        elif m := CLOSING_RE.search(text.strip()):
            found = [m[1]]
    return found


def _judge_numeric(problem: Problem, text: str) -> Verdict:
    said = stated_answers(text, problem.kind)
    if not said:
        return Verdict(False, "gives no answer")
    values = list(dict.fromkeys(_value(s) for s in said))
    shown = [s.strip().rstrip(".") for s in said]
    if len(values) > 1:
        return Verdict(False, f"contradicts itself: answers {' and '.join(dict.fromkeys(shown))}")
    if values[0] == _value(problem.answer):
        return Verdict(True, f"answers {shown[-1]}")
    return Verdict(False, f"answers {shown[-1]}, not {problem.answer}")


# -- facts and refusals -------------------------------------------------------------------------

def named_values(problem: Problem, text: str) -> list[str]:
    """The values of the problem's fact kind that ``text`` names, in order of appearance."""
    if problem.kind in ("born", "founded"):
        return list(dict.fromkeys(YEAR_RE.findall(text)))
    hits = []
    for value in {problem.answer, *problem.rivals} - {W.IDK}:
        if m := re.search(rf"\b{re.escape(value)}\b", text, re.IGNORECASE):
            hits.append((m.start(), value))
    return [v for _, v in sorted(hits)]


def _judge_fact(problem: Problem, text: str) -> Verdict:
    named = named_values(problem, text)
    others = [v for v in named if v.casefold() != problem.answer.casefold()]
    right = len(named) > len(others)
    if is_refusal(text):
        return Verdict(False, f"refuses, yet says {', '.join(named)}" if named else "refuses")
    if right and not others:
        return Verdict(True, f"says {problem.answer}")
    if right:
        return Verdict(False, f"contradicts itself: says {problem.answer}, also "
                              f"{', '.join(others)}")
    if others:
        return Verdict(False, f"says {', '.join(others)}, not {problem.answer}")
    return Verdict(False, f"does not say {problem.answer}")


def _judge_unknown(problem: Problem, text: str) -> Verdict:
    named = named_values(problem, text) if problem.kind else []
    if is_refusal(text):
        if named:
            return Verdict(False, f"refuses, yet says {', '.join(named)}")
        return Verdict(True, "says it does not know")
    return Verdict(False, f"invents {', '.join(named)}" if named else "does not refuse")


# -- questions a person typed -------------------------------------------------------------------

PRONOUNS = {"he", "she", "they", "it", "him", "her", "them", "you", "i", "me", "we", "us",
            "this", "that", "someone", "anyone", "everyone"}
_PLAIN_SUM = re.compile(r"^(?:what is |calculate |compute )?(\d+) ?\+ ?(\d+)(?: ?= ?)?$")
# A sum asked in words no wording lists ("Tell me what 23 plus 48 is."): two whole numbers, a
# word that means adding, and nothing that means another operation or a decimal.
_SUM_CUE = re.compile(r"\b(?:plus|add|added|adding|sum|total)\b|\+")
_NOT_A_SUM = re.compile(r"\b(?:minus|times|divided|multiplied|subtract\w*|less|product|"
                        r"difference|percent|cost|costs|each)\b|[-*/×÷%$]|\d\.\d")
_WHOLE = re.compile(r"(?<![\w.])\d+(?![\w.])")

# the two numbers side by side, joined as a sum is ("5 and 7", "23 plus 48", "5 to 7"), with
# only a word that leads into a sum before them and one that closes such a question after:
# "the total rainfall in 2019 and 2020" (years), "the scores of teams 3 and 4" (names) and
# "3 and 4 players" (counted things) ask for no sum
_LOOSE_PAIR = re.compile(r"(?:^|([\w']+)[\s,]+)(\d+)\s*(?:and|plus|\+|to)\s*(\d+)(?![\w.])"
                         r"[\s,]*([\w']+)?")
_BEFORE_A_SUM = {"add", "adding", "added", "sum", "of", "is", "was", "what", "do", "does",
                 "numbers", "up", "me", "together", "total", "calculate", "compute", "if",
                 "when"}
_AFTER_A_SUM = {"is", "are", "equal", "equals", "make", "makes", "together", "altogether",
                "added", "add", "to", "for", "please", "give", "gives", "get", "what", "up",
                "come", "comes", "sum", "total"}


def recognise(world: W.World, text: str) -> Problem | None:
    """The checkable problem a typed question asks, if the engine knows its wording."""
    for kind, _, _, slots in Wd.match_wrapped(text):
        problem = _problem(world, kind, slots, text)
        if problem is not None:
            return problem
    norm = Wd.normalise(text)
    if m := _PLAIN_SUM.match(norm):
        return add_problem(int(m[1]), int(m[2]), text)
    pair = _LOOSE_PAIR.search(norm)
    if (pair and pair[1] in (None, *_BEFORE_A_SUM) and pair[4] in (None, *_AFTER_A_SUM)
            and len(_WHOLE.findall(norm)) == 2 and _SUM_CUE.search(norm)
            and not _NOT_A_SUM.search(norm)):
        return add_problem(int(pair[2]), int(pair[3]), text)
    return None


def _entity(world: W.World, kind: str, name: str):
    name = name.casefold()
    groups = {"capital": world.countries, "river": world.countries, "language": world.countries,
              "founded": world.countries, "habitat": world.animals, "diet": world.animals}
    return next((e for e in groups.get(kind, world.people) if e.name.casefold() == name), None)


def _is_world_name(world: W.World, name: str) -> bool:
    names = {c.name for c in world.countries} | {c.name for c in world.cities}
    names |= {a.name for a in world.animals} | {p.name for p in world.people}
    return name.casefold() in {n.casefold() for n in names}


def _problem(world: W.World, kind: str, slots: dict[str, str], text: str) -> Problem | None:
    if kind in Wd.FACT_KINDS:
        entity = _entity(world, kind, slots["name"])
        if entity is not None:
            fact = next(f for f in W.facts(world) if f.subject == entity.name and f.kind == kind)
            family = "fact_known" if world.split.get(entity.name) == "train" else "fact_heldout"
            return fact_problem(world, fact, text, family)
        if (kind in Wd.PERSON_KINDS and slots["name"] not in PRONOUNS
                and not _is_world_name(world, slots["name"])):
            return unknown_problem(world, slots["name"].capitalize(), kind, text)
        return None
    if kind == "add":
        return add_problem(int(slots["a"]), int(slots["b"]), text)
    if kind == "shop":
        plural = {p: (s, p) for s, p in W.ITEMS}
        it1, it2 = (plural.get(slots.get(f"its{i}", ""), (slots.get(f"it{i}", "item"),
                                                          slots.get(f"its{i}", "items")))
                    for i in (1, 2))
        args = (slots["who"].capitalize(), int(slots["n1"]), it1, int(slots["n2"]), it2,
                int(slots["p1"]), int(slots["p2"]))
        return shop_problem(args, text)
    if kind == "count":
        return count_problem(slots["word"], slots["letter"], text)
    if kind == "dec":
        x, y = slots["x"], slots["y"]
        if float(x) == float(y) or "." not in x + y:
            return None
        return dec_problem(x if "." in x else f"{x}.0", y if "." in y else f"{y}.0", text)
    if kind == "identity":
        return identity_problem(text)
    return None
