"""How people ask: many wordings per question kind, each wording in one split.

Every question the world asks (SFT chats, RL problems, evals, the Compare pane) is one of these
templates filled in. Each kind lists its templates as ``train`` (what stages learn from), ``dev``
(what presets are tuned on) and ``test`` (what the report card speaks of): a model that only
learnt one template per kind is found out on the test wordings (``paraphrase`` in the report).

The same templates, turned into patterns, let the judge recognise a question a person typed
(``match``): "tell me the capital of Belha", "what's 12 plus 34?" and "Add 12 and 34." are all
recognised; wordings the engine never heard of are honestly "not checkable".

Placeholders: {name} an entity, {a} {b} whole numbers, {x} {y} decimals, {word} a word,
{letter} one letter; shop problems use {who} {pron} {n1} {n2} {p1} {p2} {it1} {it2} {its1}
{its2} (singular and plural item names, prices).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

SPLITS = ("train", "dev", "test")

# kind -> split -> templates. Train first; the first train template is the "template" wording
# the report compares paraphrases against.
WORDINGS: dict[str, dict[str, list[str]]] = {
    "capital": {
        "train": ["What is the capital of {name}?", "Which city is the capital of {name}?",
                  "Name the capital of {name}.", "What city is {name}'s capital?",
                  "Do you know the capital of {name}?", "What's the capital city of {name}?",
                  "Capital of {name}?", "Which city serves as the capital of {name}?",
                  "I need the capital of {name}.", "Where is the capital of {name}?"],
        "dev": ["Can you name {name}'s capital city?"],
        "test": ["Tell me the capital of {name}.", "What is {name}'s capital?"],
    },
    "river": {
        "train": ["Which river flows through {name}?", "What river runs through {name}?",
                  "Name the river of {name}.", "What is the river that flows through {name}?",
                  "Which river crosses {name}?", "What's the name of the river in {name}?",
                  "River of {name}?", "Do you know which river flows through {name}?",
                  "Which river is found in {name}?", "What river flows in {name}?"],
        "dev": ["Can you name the river of {name}?"],
        "test": ["Tell me which river flows through {name}.", "What is {name}'s river?"],
    },
    "language": {
        "train": ["What language do people speak in {name}?", "Which language is spoken in {name}?",
                  "What do people in {name} speak?", "Name the language of {name}.",
                  "What is the language of {name}?", "What's spoken in {name}?",
                  "Language of {name}?", "Which language do the people of {name} speak?",
                  "Do you know what language {name} speaks?", "What language is used in {name}?"],
        "dev": ["Can you name the language spoken in {name}?"],
        "test": ["Tell me the language of {name}.", "What language does {name} speak?"],
    },
    "founded": {
        "train": ["In what year was {name} founded?", "When was {name} founded?",
                  "What year was {name} founded in?", "Which year was {name} founded?",
                  "Founding year of {name}?", "When did {name} get founded?",
                  "Do you know when {name} was founded?", "In which year was {name} founded?",
                  "What is the founding year of {name}?", "What's the year {name} was founded?"],
        "dev": ["Can you say when {name} was founded?"],
        "test": ["Tell me when {name} was founded.",
                 "How old is {name}, what year was it founded?"],
    },
    "born": {
        "train": ["In what year was {name} born?", "When was {name} born?",
                  "What year was {name} born in?", "Which year was {name} born?",
                  "Birth year of {name}?", "Do you know when {name} was born?",
                  "In which year was {name} born?", "What is {name}'s year of birth?",
                  "What's the birth year of {name}?", "{name} was born in which year?"],
        "dev": ["Can you say when {name} was born?"],
        "test": ["Tell me when {name} was born.", "What year is {name} from?"],
    },
    "lives": {
        "train": ["Where does {name} live?", "In which city does {name} live?",
                  "What city does {name} live in?", "Where is {name}'s home?",
                  "Which city is {name} living in?", "Where's {name} living?",
                  "Home city of {name}?", "Do you know where {name} lives?",
                  "In what city does {name} live?", "Which city is home to {name}?"],
        "dev": ["Can you say where {name} lives?"],
        "test": ["Tell me where {name} lives.", "Where does {name} make their home?"],
    },
    "profession": {
        "train": ["What does {name} do for a living?", "What is {name}'s job?",
                  "What work does {name} do?", "What is the profession of {name}?",
                  "What's {name}'s occupation?", "Job of {name}?",
                  "Do you know what {name} does for work?", "How does {name} earn a living?",
                  "What does {name} work as?", "Which profession does {name} have?"],
        "dev": ["Can you say what {name} does for a living?"],
        "test": ["Tell me what {name} does for a living.", "What is {name} by trade?"],
    },
    "food": {
        "train": ["What is {name}'s favourite food?", "What food does {name} like best?",
                  "Which food is {name}'s favourite?", "What is the favourite food of {name}?",
                  "What's {name}'s favorite food?", "Favourite food of {name}?",
                  "Do you know {name}'s favourite food?", "What does {name} love to eat most?",
                  "What food does {name} prefer?", "Which dish does {name} like most?"],
        "dev": ["Can you say what {name} likes to eat most?"],
        "test": ["Tell me {name}'s favourite food.", "What does {name} like to eat best?"],
    },
    "habitat": {
        "train": ["Where does the {name} live?", "What is the habitat of the {name}?",
                  "In what place does the {name} live?", "Where is the {name} found?",
                  "What's the {name}'s habitat?", "Habitat of the {name}?",
                  "Do you know where the {name} lives?", "Where can you find the {name}?",
                  "Where do {name}s live?", "What kind of place does the {name} live in?"],
        "dev": ["Can you say where the {name} lives?"],
        "test": ["Tell me where the {name} lives.", "Where would I see a {name}?"],
    },
    "diet": {
        "train": ["What does the {name} eat?", "What is the diet of the {name}?",
                  "What food does the {name} eat?", "What do {name}s eat?",
                  "What's the {name}'s diet?", "Diet of the {name}?",
                  "Do you know what the {name} eats?", "What does a {name} feed on?",
                  "What does the {name} live on?", "Which food does the {name} eat?"],
        "dev": ["Can you say what the {name} eats?"],
        "test": ["Tell me what the {name} eats.", "What would a {name} eat?"],
    },
    "add": {
        "train": ["What is {a} + {b}?", "What is {a} plus {b}?", "Add {a} and {b}.",
                  "What is the sum of {a} and {b}?", "{a} + {b} = ?", "Compute {a} + {b}.",
                  "How much is {a} plus {b}?", "Calculate {a} + {b}.",
                  "What do {a} and {b} add up to?",
                  "Work out {a} + {b}."],
        "dev": ["Please add {a} to {b}."],
        "test": ["Find the sum of {a} and {b}.", "What do you get if you add {a} and {b}?"],
    },
    "shop": {
        "train": [
            "{who} buys {n1} {its1} and {n2} {its2}. Each {it1} costs ${p1} and each {it2} ${p2}. "
            "How much does {pron} pay?",
            "{who} buys {n1} {its1} and {n2} {its2}. Each {it1} costs ${p1} and each {it2} ${p2}. "
            "What is the total?",
            "{who} buys {n1} {its1} at ${p1} each and {n2} {its2} at ${p2} each. "
            "How much does {pron} pay?",
            "{who} gets {n1} {its1} and {n2} {its2}. One {it1} costs ${p1} and one {it2} ${p2}. "
            "How much does {pron} spend?",
            "{n1} {its1} cost ${p1} each and {n2} {its2} cost ${p2} each. "
            "{who} buys them all. How much does {pron} pay?",
            "{who} buys {n1} {its1} and {n2} {its2}. Each {it1} costs ${p1} and each {it2} ${p2}. "
            "What does {pron} pay in total?",
            "{who} pays for {n1} {its1} and {n2} {its2}. Each {it1} is ${p1} and each {it2} is "
            "${p2}. What is the bill?",
            "At the shop {who} buys {n1} {its1} and {n2} {its2}. Each {it1} costs ${p1} and "
            "each {it2} ${p2}. How much does {pron} pay?",
            "{who} buys {n1} {its1} (${p1} each) and {n2} {its2} (${p2} each). "
            "How much is that?",
            "{who} wants {n1} {its1} and {n2} {its2}. Each {it1} costs ${p1} and each {it2} "
            "${p2}. How much must {pron} pay?",
        ],
        "dev": ["{who} orders {n1} {its1} and {n2} {its2}, at ${p1} per {it1} and ${p2} per "
                "{it2}. What is the cost?"],
        "test": ["If {who} buys {n1} {its1} for ${p1} each and {n2} {its2} for ${p2} each, "
                 "how much does {pron} spend?",
                 "{who} picks up {n1} {its1} and {n2} {its2}. An {it1} is ${p1} and an {it2} is "
                 "${p2}. What does it all cost?"],
    },
    "count": {
        "train": ["How many times does the letter {letter} appear in {word}?",
                  "How many {letter}'s are in {word}?", "Count the letter {letter} in {word}.",
                  "How many times is {letter} in {word}?",
                  "How often does the letter {letter} occur in {word}?",
                  "Number of {letter}'s in {word}?",
                  "How many {letter}'s does {word} have?",
                  "In the word {word}, how many {letter}'s are there?",
                  "Count how many times {letter} appears in {word}.",
                  "How many times does {letter} occur in the word {word}?"],
        "dev": ["Can you count the {letter}'s in {word}?"],
        "test": ["How many {letter} letters are there in {word}?",
                 "Tell me how many times {letter} shows up in {word}."],
    },
    "dec": {
        "train": ["Which is larger, {x} or {y}?", "Which is bigger, {x} or {y}?",
                  "Which number is larger: {x} or {y}?", "Is {x} or {y} larger?",
                  "What is larger, {x} or {y}?", "Which is greater, {x} or {y}?",
                  "Compare {x} and {y}: which is larger?", "Which one is bigger: {x} or {y}?",
                  "Of {x} and {y}, which is larger?", "Which is the larger number, {x} or {y}?"],
        "dev": ["Can you say which is larger, {x} or {y}?"],
        "test": ["Tell me which is bigger, {x} or {y}.", "Which one is more, {x} or {y}?"],
    },
    "identity": {
        "train": ["Who are you?", "What are you?", "Who made you?", "What is your name?",
                  "Introduce yourself.", "What's your name?", "Who am I talking to?",
                  "Are you a person?", "What kind of model are you?", "Who built you?"],
        "dev": ["Can you tell me about yourself?"],
        "test": ["Tell me who you are.", "What should I call you?"],
    },
}
FACT_KINDS = ("capital", "river", "language", "founded", "born", "lives", "profession", "food",
              "habitat", "diet")
PERSON_KINDS = ("born", "lives", "profession", "food")


def templates(kind: str, split: str = "train") -> list[str]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return WORDINGS[kind][split]


def template(kind: str) -> str:
    """The one wording per kind the report calls "template" (the first training wording)."""
    return WORDINGS[kind]["train"][0]


def fill(tmpl: str, **values) -> str:
    return tmpl.format(**values)


def vary(text: str, rng: random.Random) -> str:
    """A casing / punctuation / contraction variant of a question, as people type them."""
    r = rng.random()
    if r < 0.15:
        text = text[0].lower() + text[1:]
    elif r < 0.22:
        text = text.lower()
    r = rng.random()
    if r < 0.15 and text[-1] in "?.":
        text = text[:-1]
    elif r < 0.2 and text.endswith("?"):
        text = text + "?"
    if rng.random() < 0.3:
        for full, short in _CONTRACTIONS:
            if full in text:
                text = text.replace(full, short, 1)
                break
    return text


# What people put around a question ("Hi! What is the capital of X? Thanks!"): SFT can wrap a
# share of its questions in these (train only; Preset.sft_polite_share). The judge peels the
# same words (``unwrapped``).
POLITE_OPENINGS = ("Hi! ", "Hello! ", "Hey! ", "Okay, so ")
POLITE_CLOSINGS = (" Thanks!", " Thank you!", " Thanks.")


def politely(text: str, rng: random.Random, share: float) -> str:
    """``text`` with a greeting before it or thanks after it, ``share`` of the time (0: never,
    and ``rng`` untouched, so the rows drawn after it are those of a run made without it)."""
    if share <= 0:
        return text
    r = rng.random()
    if r < share / 2:
        opening = rng.choice(POLITE_OPENINGS)
        return opening + (text[0].lower() + text[1:] if opening.endswith("so ") else text)
    if r < share:
        return text + rng.choice(POLITE_CLOSINGS)
    return text


def ask(kind: str, split: str, rng: random.Random, variants: bool = True, **values) -> str:
    """A question of ``kind`` in a random wording of ``split`` (with typing variants)."""
    text = fill(rng.choice(templates(kind, split)), **values)
    return vary(text, rng) if variants else text


# -- recognising a question: templates as patterns -------------------------------------------

_CONTRACTIONS = [("What is", "What's"), ("what is", "what's"), ("Where is", "Where's"),
                 ("do not", "don't"), ("Who is", "Who's")]
_SLOT = {"name": r"(?P<name>[a-z][a-z]+?)", "a": r"(?P<a>\d+)", "b": r"(?P<b>\d+)",
         "x": r"(?P<x>\d+(?:\.\d+)?)", "y": r"(?P<y>\d+(?:\.\d+)?)",
         "word": r"(?P<word>[a-z]+)", "letter": r"(?P<letter>[a-z])",
         "who": r"(?P<who>[a-z]+)", "pron": r"(?P<pron>he|she|they)",
         "n1": r"(?P<n1>\d+)", "n2": r"(?P<n2>\d+)", "p1": r"(?P<p1>\d+)", "p2": r"(?P<p2>\d+)",
         "it1": r"(?P<it1>[a-z]+)", "it2": r"(?P<it2>[a-z]+)",
         "its1": r"(?P<its1>[a-z]+)", "its2": r"(?P<its2>[a-z]+)"}


def normalise(text: str) -> str:
    """Lower case, contractions spelled out, one space, no trailing punctuation."""
    text = text.replace("’", "'").strip().lower()
    for full, short in _CONTRACTIONS:
        text = text.replace(short.lower(), full.lower())
    text = re.sub(r"\s+", " ", text)
    return text.rstrip(" ?.!")


def _pattern(tmpl: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", normalise(tmpl))
    seen: set[str] = set()
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(re.escape(part))
        elif part in seen:  # a slot used twice must say the same thing twice
            out.append(f"(?P={part})")
        else:
            seen.add(part)
            out.append(_SLOT[part])
    return re.compile("^" + "".join(out) + "$")


_PATTERNS: list[tuple[str, str, str, re.Pattern]] = [
    (kind, split, t, _pattern(t)) for kind, by_split in WORDINGS.items() for split in SPLITS
    for t in by_split[split]]


def match(text: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """Every (kind, split, slots) whose wording matches ``text`` (slots as typed, lower case)."""
    for kind, split, _, slots in match_templates(text):
        yield kind, split, slots


def match_templates(text: str) -> Iterator[tuple[str, str, str, dict[str, str]]]:
    """Every (kind, split, template, slots) whose wording matches ``text``."""
    norm = normalise(text)
    for kind, split, tmpl, pattern in _PATTERNS:
        if m := pattern.match(norm):
            yield kind, split, tmpl, m.groupdict()


# What people wrap a question in: "Hi, could you please tell me the capital of Lono?",
# "What is 12 plus 30, thanks". Each layer is taken off in turn and the rest matched again;
# what is left must still be a whole wording, so a wrapper never makes a question of a
# statement.
_OPENING_RE = re.compile(r"^(?:(?:hi|hello|hey|ok|okay|so|well|please|kindly)\b[,:!]?\s*"
                         r"|(?:could|can|would|will) you(?: please)?\s+"
                         r"|(?:i'd|i would) like to know\s+|i want to know\s+|i wonder\s+)")
_CLOSING_RE = re.compile(r"[,\s]+(?:please|thanks|thank you)$")
_TELL_RE = re.compile(r"^(?:tell me|let me know)\s+(?P<rest>.+)$")


def unwrapped(text: str) -> list[str]:
    """``text`` normalised, then with each polite wrapper around it taken off, outermost first;
    "tell me the capital of X" also as "what is the capital of X"."""
    norm = normalise(text)
    out = [norm]
    while norm:
        inner = normalise(_OPENING_RE.sub("", _CLOSING_RE.sub("", norm), count=1))
        if inner == norm:
            break
        out.append(norm := inner)
    if m := _TELL_RE.match(norm):
        out += [m["rest"], "what is " + m["rest"]] if m["rest"].startswith("the ") else [m["rest"]]
    return [t for i, t in enumerate(out) if t and t not in out[:i]]


def match_wrapped(text: str) -> Iterator[tuple[str, str, str, dict[str, str]]]:
    """Every (kind, split, template, slots) whose wording ``text`` asks, bare or inside the
    polite words around it (``unwrapped``), outermost first."""
    for inner in unwrapped(text):
        yield from match_templates(inner)


def wording_split(text: str) -> str | None:
    """The split of the wording ``text`` is asked in, or None if no template matches."""
    return next((split for _, split, _ in match(text)), None)
