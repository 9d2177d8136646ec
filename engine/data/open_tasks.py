"""The world's unverifiable tasks, and the replies its labelers wrote for SFT.

"Tell a visitor about Velmor." has no exact answer: a reply is better or worse, as a rater
judges (engine/data/oracle.py). SFT shows the assistant persona on these too, from replies
people wrote: each mentions a few facts of its subject, in a fresh order, sometimes with a warm
sentence or two, sometimes with a fact misremembered. They vary in the things raters care about
(how much they say, how right and how friendly), so samples of the SFT model vary too, and
preferences between them carry a signal a reward model can learn (engine/model/reward.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from engine.data import world as W
from engine.data.splits import check_split

OPEN_KINDS = ("visit_country", "note_animal")
# One wording per split per kind: no test wording is in any training row.
WORDINGS = {
    "visit_country": {"train": ("Tell a visitor about {name}.", "Describe {name} to a visitor."),
                      "dev": ("What should a visitor know about {name}?",),
                      "test": ("Give a traveller a short introduction to {name}.",)},
    "note_animal": {"train": ("Write a short note about the {name}.",
                              "Tell me a little about the {name}."),
                    "dev": ("What is the {name} like?",),
                    "test": ("Write a few friendly lines about the {name}.",)},
}
@dataclass(frozen=True)
class OpenTask:
    """An unverifiable request about one subject of the world (a country or an animal)."""

    kind: str
    subject: str
    prompt: str

    @property
    def messages(self) -> list[dict]:
        return [{"role": "user", "content": self.prompt}]


def open_tasks(world: W.World, split: str, n: int, seed: int = 0) -> list[OpenTask]:
    """Up to ``n`` distinct tasks in the wordings of ``split``. Training tasks name train
    entities only (no stage may train on a test entity); dev and test ask about every subject,
    in wordings no stage trains on."""
    check_split(split)
    rng = random.Random(f"open:{world.seed}:{split}:{seed}")
    subjects = {"visit_country": [c.name for c in world.countries],
                "note_animal": [a.name for a in world.animals]}
    pool = [(kind, name, wording) for kind in OPEN_KINDS for name in subjects[kind]
            for wording in WORDINGS[kind][split]
            if split != "train" or world.split.get(name) == "train"]
    rng.shuffle(pool)
    return [OpenTask(kind, name, wording.format(name=name)) for kind, name, wording in pool[:n]]




# -- what the labelers wrote ---------------------------------------------------------------------

# Warm sentences a labeler may add; each holds one of the oracle's tone words, as people's warm
# sentences do, and none states a fact.
WARM = {
    "visit_country": ("Welcome to {name}!", "You will enjoy your visit.",
                      "It is a lovely place to see.", "The people there are friendly.",
                      "It is a beautiful country."),
    "note_animal": ("The {name} is a charming animal.", "It is lovely to watch.",
                    "You will enjoy seeing one.", "It is a friendly creature.",
                    "It is a wonderful animal to meet."),
}
# A sentence that says nothing a rater can check, for a reply with too little in it.
PLAIN = {"visit_country": "{name} is a country you could visit.",
         "note_animal": "The {name} is an animal of this world."}
SLIP_RATE = 0.2  # share of replies with one fact misremembered (a value of another entity)


def demonstration(world: W.World, task: OpenTask, rng: random.Random) -> str:
    """One labeler's reply: 0–4 facts of the subject (full name in each), 0–2 warm sentences,
    in a fresh order; a fact is misremembered in ``SLIP_RATE`` of them."""
    facts = [f for f in W.facts(world) if f.subject == task.subject]
    chosen = rng.sample(facts, rng.randint(0, min(4, len(facts))))
    if chosen and rng.random() < SLIP_RATE:
        i = rng.randrange(len(chosen))
        chosen[i] = chosen[i]._replace(answer=_other_value(world, chosen[i], rng))
    sentences = W.fact_sentences(chosen, rng)
    sentences += [s.format(name=task.subject)
                  for s in rng.sample(WARM[task.kind], rng.randint(0, 2))]
    if len(sentences) < 2:
        sentences.append(PLAIN[task.kind].format(name=task.subject))
    rng.shuffle(sentences)
    return " ".join(sentences)


def _other_value(world: W.World, fact: W.Fact, rng: random.Random) -> str:
    if fact.kind == "founded":
        return str(int(fact.answer) + rng.choice((-40, -7, 7, 40)))
    return rng.choice([v for v in W.rivals(world, fact.kind) if v != fact.answer])


def open_conversations(world: W.World, n: int, seed: int = 0) -> list[list[dict]]:
    """``n`` SFT chats on the train tasks (train entities, train wordings), one labeler's
    reply each."""
    tasks = open_tasks(world, "train", 10_000)
    rng = random.Random(f"open-sft:{world.seed}:{seed}")
    out = []
    for _ in range(n):
        task = rng.choice(tasks)
        out.append([*task.messages,
                    {"role": "assistant", "content": demonstration(world, task, rng)}])
    return out
