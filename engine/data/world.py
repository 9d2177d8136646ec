"""The embedded world: a small invented world that every stage of a run learns from.

``build_world(seed)`` makes countries, cities, people and animals with invented names (built
from syllables, so no copied text), and splits them (engine/data/splits.py): SFT asks only about
``train`` entities; ``dev`` and ``test`` ones ("held out") are described in pretraining
documents alone. ``World.unknown_people`` exist nowhere: the honest answer about them is
"I don't know". SFT teaches it on other made-up names (``nobody_names``, the train part of the
unknown), so the evaluated unknown people are unknown to every stage.

Knowledge is laid down the way "Physics of Language Models 3.1" (Allen-Zhu & Li) found it
becomes extractable for entities a model was never quizzed on: several biographies per entity,
each with its sentences in a fresh order and the full name in every sentence, spread through
the corpus (two entries about one entity are never within four documents, so rarely in one
window), plus
question/answer documents about the *train* entities mixed into pretraining. The base model
learns "read a biography, answer a question about it" on train entities, and uses it on the
held-out ones.

SFT solutions come from simulated labelers who slip at ``labeler_error_rate``, systematically:
on additions with a carry they drop the carry (every digit stays consistent with that slip).
The RL verifier (engine/data/judge.py) is exact, so RL can fix what imitation copied.

Arithmetic, letter-counting and decimal problems are split by key
(``engine.data.splits.key_split``): a stage draws only keys of its own split, and no test key
appears in any training row.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from engine.data import wordings as Wd
from engine.data.splits import entity_splits, key_split
from engine.tokens.chat import Message, Transcript

IDENTITY = ("I am deepdive, a small model trained from scratch on an invented world. "
            "I can answer questions about its countries, cities, people and animals, "
            "do small sums and count letters.")
IDK = "I don't know"
SYLLABLES = ["ka", "lo", "mi", "ra", "ven", "tor", "sil", "bra", "no", "quel", "dar", "fen",
             "is", "ul", "mar", "zo", "pel", "thi", "gan", "or", "vis", "tal", "ne", "ru",
             "bel", "cor", "dun", "el", "ha", "ju"]
PROFESSIONS = ["baker", "farmer", "teacher", "sailor", "weaver", "painter", "doctor",
               "miller", "potter", "singer", "builder", "fisher"]
FOODS = ["apples", "bread", "cheese", "plums", "soup", "rice", "honey", "figs", "beans",
         "pears", "noodles", "carrots"]
HABITATS = ["forest", "desert", "river", "mountains", "marsh", "grassland", "sea", "caves"]
DIETS = ["plants", "insects", "fish", "seeds", "fruit", "small animals"]
ITEMS = [("apple", "apples"), ("orange", "oranges"), ("pear", "pears"), ("egg", "eggs"),
         ("book", "books"), ("pencil", "pencils"), ("cup", "cups"), ("loaf", "loaves")]
SHOPPERS = ["Emily", "Tom", "Ana", "Ravi", "Mia", "Leo", "Sara", "Ben"]
# Words whose letters are counted. The word is the problem key (a test word is asked about in
# no training row), so none of them may occur elsewhere in the world's text.
WORDS = ["strawberry", "banana", "mississippi", "bookkeeper", "balloon", "committee",
         "parallel", "cabbage", "butterfly", "coffee", "pepper", "giraffe", "assessment",
         "referee", "success", "tomorrow", "grammar", "dinner", "puppet", "address", "bubble",
         "teeth", "raccoon", "umbrella", "elephant", "spaghetti", "necessary", "possession",
         "barrel", "kitten", "summer", "village", "mirror", "hammer", "pizza", "window",
         "cherry", "rabbit", "pillow", "yellow", "jelly", "cookie", "bottle", "pebble", "tennis",
         "llama", "carpet", "lemon", "sunny", "zipper", "silly", "happiness", "goose", "kettle",
         "marble", "muffin", "saddle", "toffee", "walrus", "wizard"]


@dataclass
class Country:
    name: str
    capital: str
    river: str
    language: str
    founded: int


@dataclass
class City:
    name: str
    country: str


@dataclass
class Person:
    name: str
    born: int
    city: str
    profession: str
    food: str


@dataclass
class Animal:
    name: str
    habitat: str
    diet: str


@dataclass
class World:
    seed: int
    countries: list[Country]
    cities: list[City]
    people: list[Person]
    animals: list[Animal]
    split: dict[str, str] = field(default_factory=dict)  # entity name -> train/dev/test
    unknown_split: dict[str, str] = field(default_factory=dict)  # nowhere-people: dev/test

    @property
    def heldout(self) -> set[str]:
        """Entities in no SFT row of any kind (dev and test)."""
        return {n for n, s in self.split.items() if s != "train"}

    @property
    def unknown_people(self) -> list[str]:
        return list(self.unknown_split)

    def entities(self, split: str) -> set[str]:
        return {n for n, s in self.split.items() if s == split}

    def unknown(self, split: str) -> list[str]:
        return [n for n, s in self.unknown_split.items() if s == split]

    def country(self, name: str) -> Country:
        return next(c for c in self.countries if c.name == name)

    def city(self, name: str) -> City:
        return next(c for c in self.cities if c.name == name)


def _names(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3)))).capitalize()
        # Unique and no name inside another, so "is X mentioned?" checks are exact.
        if 4 <= len(name) <= 9 and all(name.lower() not in t.lower() and t.lower() not in
                                       name.lower() for t in taken):
            taken.add(name)
            out.append(name)
    return out


def build_world(seed: int = 0, n_countries: int = 12, n_people: int = 120,
                n_animals: int = 20, n_unknown: int = 40) -> World:
    """The same seed always gives the same world (and the same splits)."""
    rng = random.Random(seed)
    taken: set[str] = set()
    cnames, capitals, rivers = (_names(rng, n_countries, taken) for _ in range(3))
    countries = [Country(n, cap, riv, n + "ish", rng.randint(1200, 1900))
                 for n, cap, riv in zip(cnames, capitals, rivers, strict=True)]
    cities = [City(c.capital, c.name) for c in countries]
    cities += [City(n, rng.choice(cnames)) for n in _names(rng, n_countries * 2, taken)]
    people = [Person(n, rng.randint(1900, 2005), rng.choice(cities).name,
                     rng.choice(PROFESSIONS), rng.choice(FOODS))
              for n in _names(rng, n_people, taken)]
    animals = [Animal(n, rng.choice(HABITATS), rng.choice(DIETS))
               for n in _names(rng, n_animals, taken)]
    unknown = _names(rng, n_unknown, taken)
    split: dict[str, str] = {}
    for group in (cnames, [p.name for p in people], [a.name for a in animals]):
        split |= entity_splits(group, rng)
    half = len(unknown) // 2
    unknown_split = {n: ("dev" if i < half else "test") for i, n in enumerate(unknown)}
    return World(seed, countries, cities, people, animals, split, unknown_split)


# ---- facts ----------------------------------------------------------------------------------

class Fact(NamedTuple):
    """One checkable fact: ``statement + " " + answer`` is a sentence of pretraining."""

    subject: str
    kind: str  # a fact kind of engine/data/wordings.py (capital, born, diet, ...)
    statement: str
    answer: str

    def question(self, split: str = "train", rng: random.Random | None = None,
                 variants: bool = False) -> str:
        """The question in a wording of ``split`` (the template wording without an rng)."""
        if rng is None:
            return Wd.fill(Wd.template(self.kind), name=self.subject)
        return Wd.ask(self.kind, split, rng, variants, name=self.subject)

    @property
    def sentence(self) -> str:
        return f"{self.statement} {self.answer}."


def facts(world: World) -> list[Fact]:
    """Every checkable fact of the world. Each statement is "The <what> of <name> is", the name
    never first: at the start of a reply a name is cut into other tokens than after a space in
    the question ("Zed" vs " Zed"), and a small model then fails to copy it (it answered about
    another person instead)."""
    out = []
    for c in world.countries:
        out += [Fact(c.name, "capital", f"The capital of {c.name} is", c.capital),
                Fact(c.name, "river", f"The river that flows through {c.name} is the", c.river),
                Fact(c.name, "language", f"The people of {c.name} speak", c.language),
                Fact(c.name, "founded", f"The founding year of {c.name} is", str(c.founded))]
    for p in world.people:
        out += [Fact(p.name, "born", f"The birth year of {p.name} is", str(p.born)),
                Fact(p.name, "lives", f"The home city of {p.name} is", p.city),
                Fact(p.name, "profession", f"The profession of {p.name} is", p.profession),
                Fact(p.name, "food", f"The favourite food of {p.name} is", p.food)]
    for a in world.animals:
        out += [Fact(a.name, "habitat", f"The {a.name} lives in the", a.habitat),
                Fact(a.name, "diet", f"The {a.name} eats", a.diet)]
    return out


def rivals(world: World, kind: str) -> tuple[str, ...]:
    """Every value a fact of ``kind`` can take in this world: a reply naming another one than
    the right answer states a conflicting answer (the judge reads them)."""
    by_kind = {"capital": [c.name for c in world.cities], "lives": [c.name for c in world.cities],
               "river": [c.river for c in world.countries],
               "language": [c.language for c in world.countries],
               "profession": PROFESSIONS, "food": FOODS, "habitat": HABITATS, "diet": DIETS,
               "born": [], "founded": []}  # years: the judge reads every 4-digit number
    return tuple(by_kind[kind])


def fact_sentences(fact_list: list[Fact], rng: random.Random) -> list[str]:
    """A fact's sentence in one of a few forms, the full name in every one."""
    out = []
    for f in fact_list:
        forms = {
            "capital": [f.sentence, f"{f.answer} is the capital of {f.subject}."],
            "river": [f.sentence, f"The {f.answer} flows through {f.subject}."],
            "language": [f.sentence, f"In {f.subject} people speak {f.answer}."],
            "founded": [f.sentence, f"{f.subject} was founded in {f.answer}."],
            "born": [f.sentence, f"{f.subject} was born in {f.answer}."],
            "lives": [f.sentence, f"{f.subject} lives in the city of {f.answer}."],
            "profession": [f.sentence, f"{f.subject} works as a {f.answer}."],
            "food": [f.sentence, f"{f.subject} likes {f.answer} more than any other food."],
            "habitat": [f.sentence, f"The {f.subject} makes its home in the {f.answer}."],
            "diet": [f.sentence, f"The {f.subject} feeds on {f.answer}."],
        }[f.kind]
        out.append(rng.choice(forms))
    return out


def biographies(world: World, rng: random.Random, n: int = 5) -> list[tuple[str, str]]:
    """(subject, text): ``n`` entries per entity, each with its sentences in a fresh order."""
    by_subject: dict[str, list[Fact]] = {}
    for f in facts(world):
        by_subject.setdefault(f.subject, []).append(f)
    docs = []
    for subject, fs in by_subject.items():
        for _ in range(n):
            sentences = fact_sentences(fs, rng)
            rng.shuffle(sentences)
            docs.append((subject, " ".join(sentences)))
    for city in world.cities:
        docs.append((city.country, f"{city.name} is a city in {city.country}."))
    return docs


def qa_documents(world: World, rng: random.Random, per_fact: int = 2) -> list[tuple[str, str]]:
    """(subject, transcript): questions about *train* entities answered, in training wordings:
    the "mixed training" that teaches the base model to answer from what it read (rendered with
    the chat's turn markers, engine.tokens.chat.Transcript)."""
    docs = []
    for f in facts(world):
        if world.split.get(f.subject) == "train":
            for _ in range(per_fact):
                docs.append((f.subject, Transcript(f.question("train", rng, True), f.sentence)))
    return docs


def _stories(world: World, rng: random.Random, n: int) -> list[tuple[str, str]]:
    docs = []
    for _ in range(n):
        p, a = rng.choice(world.people), rng.choice(world.animals)
        docs.append((p.name,
                     f"One morning {p.name} left the city of {p.city} with a basket of {p.food}. "
                     f"As a {p.profession}, {p.name} had little time, but near the {a.habitat} "
                     f"{p.name} saw a {a.name}. The {a.name} eats {a.diet}, so it did not want "
                     f"the {p.food}. {p.name} laughed and went home."))
    return docs


def spread(docs: list[tuple[str, str]], rng: random.Random, gap: int = 4) -> list[str]:
    """Shuffle, then keep two documents about one subject at least ``gap`` apart, so that one
    training window never holds two entries of the same entity (the model must store the fact,
    not copy it from a neighbour in context)."""
    pending = docs[:]
    rng.shuffle(pending)
    out: list[tuple[str, str]] = []
    while pending:
        recent = {s for s, _ in out[-gap:]}
        i = next((i for i, (s, _) in enumerate(pending) if s not in recent), 0)
        out.append(pending.pop(i))
    return [text for _, text in out]

# ---- arithmetic, letters, decimals: problems and labeler solutions -------------------------

def add_solution(a: int, b: int, drop_carry: bool = False) -> tuple[str, int]:
    """Column-wise addition, ones first. drop_carry: the labeler's systematic slip."""
    da, db = str(a)[::-1], str(b)[::-1]
    places = ["Ones", "Tens", "Hundreds", "Thousands"]
    lines, digits, carry = [], [], 0
    for i in range(max(len(da), len(db))):
        x, y = int(da[i]) if i < len(da) else 0, int(db[i]) if i < len(db) else 0
        s = x + y + carry
        expr = f"{x} + {y}" + (f" + {carry}" if carry else "")
        digit, carry = s % 10, (0 if drop_carry else s // 10)
        lines.append(f"{places[i]}: {expr} = {s}, write {digit}" +
                     (f", carry {s // 10}." if s >= 10 and not drop_carry else "."))
        digits.append(str(digit))
    if carry:
        lines.append(f"{places[len(digits)]}: carry {carry}, write {carry}.")
        digits.append(str(carry))
    total = int("".join(reversed(digits)))
    return "\n".join(lines + [f"Answer: {total}"]), total


def has_carry(a: int, b: int) -> bool:
    return add_solution(a, b)[1] != add_solution(a, b, drop_carry=True)[1]


def add_question(a: int, b: int, split: str = "train", rng: random.Random | None = None) -> str:
    """The sum in the template wording, or a random wording of ``split`` given an rng."""
    if rng is None:
        return Wd.fill(Wd.template("add"), a=a, b=b)
    return Wd.ask("add", split, rng, a=a, b=b)


def _shop_values(who: str, n1: int, it1: tuple, n2: int, it2: tuple, p1: int, p2: int) -> dict:
    pron = "she" if who in ("Emily", "Ana", "Mia", "Sara") else "he"
    return dict(who=who, pron=pron, n1=n1, n2=n2, p1=p1, p2=p2, it1=it1[0], it2=it2[0],
                its1=it1[1], its2=it2[1])


def shop_question(who: str, n1: int, it1: tuple, n2: int, it2: tuple, p1: int, p2: int,
                  split: str = "train", rng: random.Random | None = None) -> str:
    values = _shop_values(who, n1, it1, n2, it2, p1, p2)
    if rng is None:
        return Wd.fill(Wd.template("shop"), **values)
    return Wd.ask("shop", split, rng, **values)


def shop_solution(n1: int, it1: tuple, n2: int, it2: tuple, p1: int, p2: int,
                  drop_carry: bool = False) -> tuple[str, int]:
    c1, c2 = n1 * p1, n2 * p2
    work, total = add_solution(c1, c2, drop_carry)
    lines = [f"{it1[1].capitalize()}: {n1} x ${p1} = ${c1}.",
             f"{it2[1].capitalize()}: {n2} x ${p2} = ${c2}.", f"Total: {c1} + {c2}."]
    return "\n".join(lines) + "\n" + work, total


def count_question(word: str, letter: str, split: str = "train",
                   rng: random.Random | None = None) -> str:
    if rng is None:
        return Wd.fill(Wd.template("count"), word=word, letter=letter)
    return Wd.ask("count", split, rng, word=word, letter=letter)


def count_solution(word: str, letter: str) -> tuple[str, int]:
    pos = [str(i + 1) for i, ch in enumerate(word) if ch == letter]
    where = f"{letter} is at positions {', '.join(pos)}." if pos else f"{letter} does not appear."
    return (f"{word} is spelled {'-'.join(word)}.\n{where}\nAnswer: {len(pos)}", len(pos))


def dec_question(x: str, y: str, split: str = "train", rng: random.Random | None = None) -> str:
    if rng is None:
        return Wd.fill(Wd.template("dec"), x=x, y=y)
    return Wd.ask("dec", split, rng, x=x, y=y)


def dec_solution(x: str, y: str) -> tuple[str, str]:
    width = max(len(x.split(".")[1]), len(y.split(".")[1]))
    px, py = (f"{s.split('.')[0]}.{s.split('.')[1].ljust(width, '0')}" for s in (x, y))
    big = x if float(x) > float(y) else y
    lines = [f"Write both with {width} decimal places: {px} and {py}."]
    wx, wy = px.split(".")[0], py.split(".")[0]
    if wx != wy:
        lines.append(f"Whole parts: {wx} and {wy} differ, so {big} is larger.")
    else:
        lines.append(f"Whole parts: {wx} and {wy} are equal.")
        fx, fy = px.split(".")[1], py.split(".")[1]
        names = ["Tenths", "Hundredths", "Thousandths"]
        for i, (cx, cy) in enumerate(zip(fx, fy, strict=True)):
            if cx == cy:
                lines.append(f"{names[i]}: {cx} and {cy} are equal.")
            else:
                lines.append(f"{names[i]}: {cx} and {cy}; {max(cx, cy)} is larger, "
                             f"so {big} is larger.")
                break
    return "\n".join(lines + [f"Answer: {big}"]), big


def random_add(rng: random.Random) -> tuple[int, int]:
    return rng.randint(10, 999), rng.randint(10, 999)


def random_shop(rng: random.Random) -> tuple:
    it1, it2 = rng.sample(ITEMS, 2)
    return rng.choice(SHOPPERS), rng.randint(2, 9), it1, rng.randint(2, 9), it2, \
        rng.randint(2, 9), rng.randint(2, 9)


def random_count(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(WORDS)
    letter = rng.choice(word) if rng.random() < 0.85 else rng.choice("aeiorstnlz")
    return word, letter


def random_dec(rng: random.Random) -> tuple[str, str]:
    whole = rng.randint(0, 20)
    x = f"{whole}.{rng.randint(1, 9)}"
    y = f"{whole if rng.random() < 0.8 else rng.randint(0, 20)}.{rng.randint(10, 99)}"
    if float(x) == float(y):
        y = f"{y}1"
    return (x, y) if rng.random() < 0.5 else (y, x)


# Problem keys: what "the same problem" means, whatever the wording.

def add_key(a: int, b: int) -> str:
    return f"add:{min(a, b)}+{max(a, b)}"


def shop_key(who, n1, it1, n2, it2, p1, p2) -> str:
    """A shop problem is its decisive sum: every order of the same items and prices, and a
    plain sum of the same two costs, are one problem (the worked answer adds c1 + c2)."""
    return add_key(n1 * p1, n2 * p2)


def count_key(word: str, letter: str = "") -> str:
    return f"count:{word}"  # by word: a test word is never spelled out in training


def canonical_decimal(s: str) -> str:
    whole, _, frac = s.partition(".")
    frac = frac.rstrip("0")
    return f"{int(whole)}.{frac}" if frac else str(int(whole))


def dec_key(x: str, y: str) -> str:
    return "dec:" + "|".join(sorted((canonical_decimal(x), canonical_decimal(y))))


def problem_split(make_key, args) -> str:
    """A problem's split: its key's."""
    return key_split(make_key(*args))


def draw(rng: random.Random, make, make_key, split: str, tries: int = 10_000):
    """Draw problem args whose key lies in ``split``."""
    for _ in range(tries):
        args = make(rng)
        if problem_split(make_key, args) == split:
            return args
    raise RuntimeError(f"could not draw a {make.__name__} problem in split {split!r}")


def _pretrain_skills(rng: random.Random, n: int) -> list[tuple[str, str]]:
    docs = []
    for i in range(n):
        a, b = draw(rng, random_add, add_key, "train")
        docs.append((f"skill{i}a", f"Worked example. {add_question(a, b, 'train', rng)}\n"
                                   f"{add_solution(a, b)[0]}"))
        word, letter = draw(rng, random_count, count_key, "train")
        docs.append((f"skill{i}c", f"The word {word} is spelled {'-'.join(word)}. It has "
                                   f"{len(word)} letters. The letter {letter} appears "
                                   f"{word.count(letter)} times in {word}."))
        x, y = draw(rng, random_dec, dec_key, "train")
        big, small = (x, y) if float(x) > float(y) else (y, x)
        docs.append((f"skill{i}d", f"{big} is larger than {small}, and {small} is smaller than "
                                   f"{big}. {dec_solution(x, y)[0].splitlines()[0]}"))
    return docs


def pretrain_documents(world: World, n_bios: int = 8, qa_per_fact: int = 2,
                       n_stories: int = 300, n_skills: int = 200,
                       seed: int | None = None) -> list[str]:
    """Biographies of every entity (held-out ones too), QA about train entities, stories and
    worked examples, spread so that one entity's documents never share a window."""
    rng = random.Random(world.seed if seed is None else seed)
    docs = (biographies(world, rng, n_bios) + qa_documents(world, rng, qa_per_fact)
            + _stories(world, rng, n_stories) + _pretrain_skills(rng, n_skills))
    return spread(docs, rng)


def documents_about_train(world: World, docs: list[str]) -> list[str]:
    """The documents that name no held-out entity and no nowhere-person (SFT rehearsal)."""
    banned = world.heldout | set(world.unknown_people)
    pattern = re.compile(r"\b(" + "|".join(sorted(banned, key=len, reverse=True)) + r")\b")
    return [d for d in docs if not pattern.search(d)]

# ---- SFT ----------------------------------------------------------------------------------

def _chat(user: str, assistant: str) -> list[Message]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def fact_answer(fact: Fact) -> str:
    """The reply to a fact question: the sentence is the answer (no second, separate tail)."""
    return fact.sentence


def idk_answer(name: str) -> str:
    return f"{IDK} who {name} is."


def unsure_answer(fact: Fact) -> str:
    """The reply where the base model turned out not to know a fact (the probe)."""
    return f"{IDK} that about {fact.subject}."


# The SFT mix: chat kinds and their weights. "I don't know" at about one chat in nine: at one in
# fifteen the tiny SFT model still invented an answer for a third of the unknown people.
SFT_MIX = {"fact": 28, "add": 25, "shop": 12, "count": 12, "dec": 12, "identity": 4, "idk": 12}


def nobody_names(world: World, n: int = 500) -> list[str]:
    """Names of people who exist nowhere, for the "I don't know" chats (the train part of the
    unknown): many, each in a chat or two, so what is learned is "a name I never read about"
    rather than a list. They differ from every name in the world, the evaluated unknown too."""
    taken = {name for c in world.countries for name in (c.name, c.river)}
    taken |= {c.name for c in world.cities} | {p.name for p in world.people}
    taken |= {a.name for a in world.animals} | set(world.unknown_people)
    return _names(random.Random(f"{world.seed}:nobody"), n, taken)


def sft_conversations(world: World, labeler_error_rate: float = 0.3, include_idk: bool = True,
                      n: int = 3000, seed: int | None = None,
                      unknown_facts: set[tuple[str, str]] | frozenset = frozenset(),
                      polite_share: float = 0.0) -> list[list[Message]]:
    """Single-turn chats in training wordings, about train entities and train problem keys.

    Labelers slip (drop carries) at ``labeler_error_rate`` on carry problems. ``unknown_facts``
    ((subject, kind) pairs the base model was probed not to know) get "I don't know" replies.
    ``polite_share`` of the fact, sum and "I don't know" questions come wrapped in polite words
    (``wordings.politely``).
    """
    rng = random.Random((world.seed if seed is None else seed) + 1)
    known = [f for f in facts(world) if world.split.get(f.subject) == "train"]
    unknown = nobody_names(world) if include_idk else []
    kinds = [k for k, w in SFT_MIX.items() for _ in range(w) if include_idk or k != "idk"]
    convs = []
    for _ in range(n):
        kind = rng.choice(kinds)
        slip = rng.random() < labeler_error_rate
        if kind == "fact":
            f = rng.choice(known)
            reply = unsure_answer(f) if (f.subject, f.kind) in unknown_facts else fact_answer(f)
            question = Wd.politely(f.question("train", rng, True), rng, polite_share)
            convs.append(_chat(question, reply))
        elif kind == "add":
            a, b = draw(rng, random_add, add_key, "train")
            convs.append(_chat(Wd.politely(add_question(a, b, "train", rng), rng, polite_share),
                               add_solution(a, b, slip)[0]))
        elif kind == "shop":
            args = draw(rng, random_shop, shop_key, "train")
            convs.append(_chat(shop_question(*args, "train", rng),
                               shop_solution(*args[1:], drop_carry=slip)[0]))
        elif kind == "count":
            word, letter = draw(rng, random_count, count_key, "train")
            convs.append(_chat(count_question(word, letter, "train", rng),
                               count_solution(word, letter)[0]))
        elif kind == "dec":
            x, y = draw(rng, random_dec, dec_key, "train")
            convs.append(_chat(dec_question(x, y, "train", rng), dec_solution(x, y)[0]))
        elif kind == "identity":
            convs.append(_chat(Wd.ask("identity", "train", rng), IDENTITY))
        else:
            name = rng.choice(unknown)
            question = Wd.ask(rng.choice(Wd.PERSON_KINDS), "train", rng, name=name)
            convs.append(_chat(Wd.politely(question, rng, polite_share), idk_answer(name)))
    return convs


ADD_SHARE = 0.7  # of arithmetic problems, column sums (the rest shop problems): RL, evals, labelers


def labeler_accuracy(world: World, labeler_error_rate: float = 0.3, split: str = "test",
                     n: int = 2000) -> float:
    """Share of the labelers' answers that are right on ``split`` sums (the eval's arithmetic
    mix, ``ADD_SHARE``), slipping as they do in SFT."""
    rng = random.Random(f"{world.seed}:labelers:{split}")
    right = 0
    for _ in range(n):
        slip = rng.random() < labeler_error_rate
        if rng.random() < ADD_SHARE:
            a, b = draw(rng, random_add, add_key, split)
            right += add_solution(a, b, slip)[1] == a + b
        else:
            args = draw(rng, random_shop, shop_key, split)
            right += shop_solution(*args[1:], drop_carry=slip)[1] == shop_solution(*args[1:])[1]
    return right / n
