"""The embedded world: a small invented world that every stage of a run learns from.

``build_world(seed)`` makes countries, cities, people and animals with invented names (built
from syllables, so no copied text). Pretraining documents describe *every* entity; SFT data
asks only about the "known" ones, so ~20% of the entities (``World.heldout``) are knowledge the
base model saw but the chat model was never drilled on. ``World.unknown_people`` exist nowhere:
the honest answer about them is "I don't know" (SFT teaches it on other made-up names,
``nobody_names``, so the eval's unknown people are unknown to every stage).

SFT solutions come from simulated labelers who slip at ``labeler_error_rate``, systematically:
on additions with a carry they drop the carry (every digit stays consistent with that slip).
The RL verifier (engine/tasks.py) is exact, so RL can fix what imitation copied.

Arithmetic, letter-counting and decimal-comparison problems whose key hashes into the held-out
bucket (``is_heldout_key``) never appear in pretraining, SFT or RL-train data.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field

Message = dict  # {"role": "system"|"user"|"assistant", "content": str}

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
WORDS = ["strawberry", "banana", "mississippi", "bookkeeper", "letter", "apple", "balloon",
         "committee", "parallel", "cabbage", "butterfly", "coffee", "pepper", "giraffe",
         "assessment", "referee", "success", "tomorrow", "grammar", "dinner", "puppet",
         "address", "bubble", "teeth", "raccoon", "umbrella", "elephant", "spaghetti",
         "necessary", "possession", "barrel", "kitten", "summer", "village", "mirror",
         "carrot", "hammer", "pizza", "river", "window"]


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
    heldout: set[str] = field(default_factory=set)  # entity names absent from all SFT data
    unknown_people: list[str] = field(default_factory=list)  # exist nowhere in the world

    def country(self, name: str) -> Country:
        return next(c for c in self.countries if c.name == name)

    def city(self, name: str) -> City:
        return next(c for c in self.cities if c.name == name)


def is_heldout_key(key: str) -> bool:
    """A stable 1-in-5 bucket of problem keys reserved for held-out evaluation."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 5 == 0


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


def build_world(seed: int = 0, n_countries: int = 10, n_people: int = 60,
                n_animals: int = 20, n_unknown: int = 30) -> World:
    """The same seed always gives the same world."""
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
    heldout = set()
    for group in (cnames, [p.name for p in people], [a.name for a in animals]):
        heldout.update(rng.sample(group, max(1, len(group) // 5)))
    return World(seed, countries, cities, people, animals, heldout, unknown)


# ---- facts: (subject, question, statement prefix, answer) ----------------------------------

def facts(world: World) -> list[tuple[str, str, str, str]]:
    """Every checkable fact. The statement prefix + " " + answer is a sentence in pretraining."""
    out = []
    for c in world.countries:
        out += [(c.name, f"What is the capital of {c.name}?", f"The capital of {c.name} is",
                 c.capital),
                (c.name, f"Which river flows through {c.name}?",
                 f"The river that flows through {c.name} is the", c.river),
                (c.name, f"What language do people speak in {c.name}?",
                 f"The people of {c.name} speak", c.language),
                (c.name, f"In what year was {c.name} founded?", f"{c.name} was founded in",
                 str(c.founded))]
    for p in world.people:
        out += [(p.name, f"In what year was {p.name} born?", f"{p.name} was born in",
                 str(p.born)),
                (p.name, f"Where does {p.name} live?", f"{p.name} lives in the city of", p.city),
                (p.name, f"What does {p.name} do for a living?", f"{p.name} works as a",
                 p.profession),
                (p.name, f"What is {p.name}'s favourite food?",
                 f"The favourite food of {p.name} is", p.food)]
    for a in world.animals:
        out += [(a.name, f"Where does the {a.name} live?", f"The {a.name} lives in the",
                 a.habitat),
                (a.name, f"What does the {a.name} eat?", f"The {a.name} eats", a.diet)]
    return out


def _encyclopedia(world: World, rng: random.Random, paraphrases: int) -> list[str]:
    docs = []
    for c in world.countries:
        forms = [f"{c.name} is a country. The capital of {c.name} is {c.capital}. The river that "
                 f"flows through {c.name} is the {c.river}. The people of {c.name} speak "
                 f"{c.language}. {c.name} was founded in {c.founded}.",
                 f"{c.capital} is the capital city of {c.name}, a country founded in {c.founded}. "
                 f"The capital of {c.name} is {c.capital}. The people of {c.name} speak "
                 f"{c.language}, and the river that flows through {c.name} is the {c.river}.",
                 f"The country of {c.name} was founded in {c.founded}. {c.name} was founded in "
                 f"{c.founded}. Its river is the {c.river} and its language is {c.language}. "
                 f"The capital of {c.name} is {c.capital}."]
        docs += forms[:paraphrases]
    for city in world.cities:
        docs.append(f"{city.name} is a city in {city.country}.")
    for p in world.people:
        forms = [f"{p.name} was born in {p.born}. {p.name} lives in the city of {p.city}. "
                 f"{p.name} works as a {p.profession}. The favourite food of {p.name} is {p.food}.",
                 f"{p.name} works as a {p.profession} and lives in the city of {p.city}. "
                 f"{p.name} was born in {p.born}. The favourite food of {p.name} is {p.food}.",
                 f"The favourite food of {p.name} is {p.food}. {p.name} lives in the city of "
                 f"{p.city}, works as a {p.profession}, and was born in {p.born}."]
        docs += forms[:paraphrases]
    for a in world.animals:
        forms = [f"The {a.name} is an animal. The {a.name} lives in the {a.habitat}. "
                 f"The {a.name} eats {a.diet}.",
                 f"The {a.name} eats {a.diet}. The {a.name} lives in the {a.habitat}.",
                 f"In the {a.habitat} lives the {a.name}. The {a.name} lives in the {a.habitat}"
                 f" and the {a.name} eats {a.diet}."]
        docs += forms[:paraphrases]
    return docs


def _stories(world: World, rng: random.Random, n: int) -> list[str]:
    docs = []
    for _ in range(n):
        p, a = rng.choice(world.people), rng.choice(world.animals)
        docs.append(f"One morning {p.name} left the city of {p.city} with a basket of {p.food}. "
                    f"As a {p.profession}, {p.name} had little time, but near the {a.habitat} "
                    f"{p.name} saw a {a.name}. The {a.name} eats {a.diet}, so it did not want "
                    f"the {p.food}. {p.name} laughed and went home.")
    return docs


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


def add_question(a: int, b: int) -> str:
    return f"What is {a} + {b}?"


SHOP_RE = re.compile(r"(\w+) buys (\d+) (\w+) and (\d+) (\w+)\. Each \w+ costs \$(\d+) and "
                     r"each \w+ \$(\d+)\. How much does \w+ pay\?")
ADD_RE = re.compile(r"^What is (\d+) \+ (\d+)\?$")


def shop_question(who: str, n1: int, it1: tuple, n2: int, it2: tuple, p1: int, p2: int) -> str:
    pron = "she" if who in ("Emily", "Ana", "Mia", "Sara") else "he"
    return (f"{who} buys {n1} {it1[1]} and {n2} {it2[1]}. Each {it1[0]} costs ${p1} and each "
            f"{it2[0]} ${p2}. How much does {pron} pay?")


def shop_solution(n1: int, it1: tuple, n2: int, it2: tuple, p1: int, p2: int,
                  drop_carry: bool = False) -> tuple[str, int]:
    c1, c2 = n1 * p1, n2 * p2
    work, total = add_solution(c1, c2, drop_carry)
    lines = [f"{it1[1].capitalize()}: {n1} x ${p1} = ${c1}.",
             f"{it2[1].capitalize()}: {n2} x ${p2} = ${c2}.", f"Total: {c1} + {c2}."]
    return "\n".join(lines) + "\n" + work, total


def count_question(word: str, letter: str) -> str:
    return f"How many times does the letter {letter} appear in {word}?"


def count_solution(word: str, letter: str) -> tuple[str, int]:
    pos = [str(i + 1) for i, ch in enumerate(word) if ch == letter]
    where = f"{letter} is at positions {', '.join(pos)}." if pos else f"{letter} does not appear."
    return (f"{word} is spelled {'-'.join(word)}.\n{where}\nAnswer: {len(pos)}", len(pos))


def dec_question(x: str, y: str) -> str:
    return f"Which is larger, {x} or {y}?"


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


def random_count(rng: random.Random, world: World | None = None) -> tuple[str, str]:
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


def add_key(a: int, b: int) -> str:
    return f"add:{min(a, b)}+{max(a, b)}"


def shop_key(who, n1, it1, n2, it2, p1, p2) -> str:
    return f"shop:{n1}x{p1}+{n2}x{p2}"


def count_key(word: str, letter: str) -> str:
    return f"count:{word}:{letter}"


def dec_key(x: str, y: str) -> str:
    return "dec:" + "|".join(sorted((x, y)))


def _draw(rng: random.Random, make, key, heldout: bool, tries: int = 1000):
    """Draw problem args whose key is (heldout) or is not (train) in the reserved bucket."""
    for _ in range(tries):
        args = make(rng)
        if is_heldout_key(key(*args)) == heldout:
            return args
    raise RuntimeError("could not draw a problem in the requested split")


def _pretrain_skills(rng: random.Random, n: int) -> list[str]:
    docs = []
    for _ in range(n):
        a, b = _draw(rng, random_add, add_key, False)
        docs.append(f"Worked example. {add_question(a, b)}\n{add_solution(a, b)[0]}")
        word, letter = _draw(rng, random_count, count_key, False)
        docs.append(f"The word {word} is spelled {'-'.join(word)}. It has {len(word)} letters. "
                    f"The letter {letter} appears {word.count(letter)} times in {word}.")
        x, y = _draw(rng, random_dec, dec_key, False)
        big, small = (x, y) if float(x) > float(y) else (y, x)
        docs.append(f"{big} is larger than {small}, and {small} is smaller than {big}. "
                    f"{dec_solution(x, y)[0].splitlines()[0]}")
    return docs


def pretrain_documents(world: World, paraphrases: int = 3, n_stories: int = 300,
                       n_skills: int = 400, seed: int | None = None) -> list[str]:
    """Encyclopedia entries (all entities, held-out ones too), stories, worked examples."""
    rng = random.Random(world.seed if seed is None else seed)
    # Each entry three times over: with one copy the entries were ~15% of the text and the tiny
    # base model completed 44% of held-out fact sentences; with three, 94% (seed 0, 500 steps).
    docs = (_encyclopedia(world, rng, paraphrases) * 3 + _stories(world, rng, n_stories)
            + _pretrain_skills(rng, n_skills))
    rng.shuffle(docs)
    return docs


# ---- SFT ----------------------------------------------------------------------------------

def _chat(user: str, assistant: str) -> list[Message]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def fact_answer(statement: str, answer: str) -> str:
    return f"{statement} {answer}. Answer: {answer}"


def idk_answer(name: str) -> str:
    return f"{IDK} who {name} is. Answer: {IDK}"


# The SFT mix: chat kinds and their weights. "I don't know" at about one chat in nine: at one in
# fifteen the tiny SFT model still invented an answer for a third of the unknown people.
SFT_MIX = {"fact": 28, "add": 25, "shop": 12, "count": 12, "dec": 12, "identity": 4, "idk": 12}


def nobody_names(world: World, n: int = 500) -> list[str]:
    """Names of people who exist nowhere, for the "I don't know" chats: many, each in a chat or
    two, so what is learned is "a name I never read about" rather than a list of 15 names. They
    differ from every name in the world, ``unknown_people`` (kept for evals) included."""
    taken = {name for c in world.countries for name in (c.name, c.river)}
    taken |= {c.name for c in world.cities} | {p.name for p in world.people}
    taken |= {a.name for a in world.animals} | set(world.unknown_people)
    return _names(random.Random(f"{world.seed}:nobody"), n, taken)


def sft_conversations(world: World, labeler_error_rate: float = 0.3, include_idk: bool = True,
                      n: int = 3000, seed: int | None = None) -> list[list[Message]]:
    """Single-turn chats; labelers slip (drop carries) at labeler_error_rate on carry problems."""
    rng = random.Random((world.seed if seed is None else seed) + 1)
    known = [f for f in facts(world) if f[0] not in world.heldout]
    unknown = nobody_names(world) if include_idk else []
    kinds = [k for k, w in SFT_MIX.items() for _ in range(w) if include_idk or k != "idk"]
    convs = []
    for _ in range(n):
        kind = rng.choice(kinds)
        slip = rng.random() < labeler_error_rate
        if kind == "fact":
            _, q, stmt, ans = rng.choice(known)
            convs.append(_chat(q, fact_answer(stmt, ans)))
        elif kind == "add":
            a, b = _draw(rng, random_add, add_key, False)
            convs.append(_chat(add_question(a, b), add_solution(a, b, slip)[0]))
        elif kind == "shop":
            args = _draw(rng, random_shop, shop_key, False)
            convs.append(_chat(shop_question(*args), shop_solution(*args[1:], drop_carry=slip)[0]))
        elif kind == "count":
            word, letter = _draw(rng, random_count, count_key, False)
            convs.append(_chat(count_question(word, letter), count_solution(word, letter)[0]))
        elif kind == "dec":
            x, y = _draw(rng, random_dec, dec_key, False)
            convs.append(_chat(dec_question(x, y), dec_solution(x, y)[0]))
        elif kind == "identity":
            convs.append(_chat(rng.choice(["Who are you?", "What are you?", "Who made you?"]),
                               IDENTITY))
        else:
            name = rng.choice(unknown)
            convs.append(_chat(rng.choice([f"Where does {name} live?",
                                           f"In what year was {name} born?",
                                           f"What does {name} do for a living?"]),
                               idk_answer(name)))
    return convs


def expected_arith(question: str) -> int | None:
    """The exact answer of an arithmetic SFT question, or None if it is not one."""
    if m := ADD_RE.match(question):
        return int(m[1]) + int(m[2])
    if m := SHOP_RE.match(question):
        return int(m[2]) * int(m[6]) + int(m[4]) * int(m[7])
    return None


def labeler_accuracy(conversations_or_world, labeler_error_rate: float = 0.3,
                     include_idk: bool = True) -> float:
    """Share of arithmetic SFT conversations whose final 'Answer:' is exactly right."""
    from engine.tasks import final_answer

    convs = conversations_or_world
    if isinstance(convs, World):
        convs = sft_conversations(convs, labeler_error_rate, include_idk)
    right = total = 0
    for conv in convs:
        user = next((m["content"] for m in conv if m["role"] == "user"), "")
        reply = next((m["content"] for m in conv if m["role"] == "assistant"), "")
        expected = expected_arith(user)
        if expected is None:
            continue
        total += 1
        right += final_answer(reply) == str(expected)
    return right / total if total else 1.0
