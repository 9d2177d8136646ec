"""The hidden raters of the unverifiable tasks (engine/data/oracle.py) and the reward model that
learns from them (engine/model/reward.py)."""

from __future__ import annotations

import math
import random

import pytest
import torch

from engine.data import open_tasks as OT
from engine.data import oracle as O
from engine.data import world as W


@pytest.fixture(scope="module")
def world() -> W.World:
    return W.build_world(0)


def _country_task(world: W.World) -> OT.OpenTask:
    return next(t for t in OT.open_tasks(world, "test", 100) if t.kind == "visit_country")


def _replies(world: W.World, task: OT.OpenTask) -> dict[str, str]:
    facts = [f for f in W.facts(world) if f.subject == task.subject]
    right = " ".join(f.sentence for f in facts)
    other = next(c for c in world.countries if c.name != task.subject)
    return {
        "friendly and right": f"Welcome! {right} You will enjoy it.",
        "right": right,
        "empty-handed": f"{task.subject} is a place you could visit one day.",
        "wrong": f"The capital of {task.subject} is {other.capital}. People there speak "
                 f"{other.language}. It is a place to see.",
        "gushing and repeating": "Welcome welcome, lovely lovely place! " * 12,
    }


def test_gold_ranks_hand_written_replies_as_a_careful_rater_would(world):
    task = _country_task(world)
    g = {name: O.gold(world, task, text) for name, text in _replies(world, task).items()}
    order = ["friendly and right", "right", "empty-handed", "wrong"]
    assert [g[n].score for n in order] == sorted((g[n].score for n in order), reverse=True)
    assert g["right"].true_facts == 4 and g["right"].false_facts == 0
    assert g["wrong"].false_facts == 2 and g["wrong"].true_facts == 0
    # warm words help up to a point; saying them over and over is worse than saying nothing
    assert g["gushing and repeating"].score < g["empty-handed"].score
    assert g["gushing and repeating"].repeated > 0.5


def test_raters_disagree_about_as_often_as_people_do(world):
    task = _country_task(world)
    replies = _replies(world, task)
    clear = [(task, replies["right"], replies["wrong"])] * 3000
    agreement = O.self_agreement(world, clear, seed=1)
    expected = 1 - 2 * O.RATER_FLIP * (1 - O.RATER_FLIP)
    assert abs(agreement - expected) < 0.03 and 0.69 <= agreement <= 0.75
    rng = random.Random(2)
    picks = [O.prefer(world, task, replies["right"], replies["wrong"], rng) for _ in range(3000)]
    assert abs(picks.count(0) / 3000 - (1 - O.RATER_FLIP)) < 0.03  # mostly the better one
    again = random.Random(2)
    assert picks[:50] == [O.prefer(world, task, replies["right"], replies["wrong"], again)
                          for _ in range(50)]  # the same seed, the same raters


def test_training_tasks_hold_no_test_entity_or_wording(world):
    train = OT.open_tasks(world, "train", 10_000)
    test = OT.open_tasks(world, "test", 10_000)
    assert train and test and len({t.prompt for t in test}) == len(test)
    assert all(world.split[t.subject] == "train" for t in train)
    test_wordings = {w for kind in OT.OPEN_KINDS for w in OT.WORDINGS[kind]["test"]}
    for t in train:
        assert not any(t.prompt == w.format(name=t.subject) for w in test_wordings)


def _toy_pairs(n: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """Chosen replies hold token 7, rejected ones token 9, amid random filler."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        prompt = [1] + [rng.randrange(10, 40) for _ in range(rng.randrange(2, 6))]
        filler = [rng.randrange(10, 40) for _ in range(rng.randrange(3, 8))]
        at = rng.randrange(len(filler) + 1)
        pairs.append((prompt + filler[:at] + [7] + filler[at:],
                      prompt + filler[:at] + [9] + filler[at:]))
    return pairs


def _reward_model():
    from engine.model.gpt import GPT, GPTConfig
    from engine.model.reward import RewardModel

    torch.manual_seed(0)
    return RewardModel(GPT(GPTConfig(vocab_size=48, block_size=32, n_layer=1, n_head=2,
                                     n_embd=16)))


def test_the_reward_model_starts_indifferent_and_learns_a_separable_preference():
    from engine.model.reward import bt_loss, pair_accuracy, train_reward_model

    rm = _reward_model()
    train, held_out = _toy_pairs(200, 0), _toy_pairs(100, 1)
    assert bt_loss(rm, train[:8]).item() == pytest.approx(math.log(2))  # zero head: no opinion
    assert pair_accuracy(rm, held_out) == 0.5  # every score ties
    losses = train_reward_model(rm, train, steps=150, batch_size=16, lr=3e-3)
    assert sum(losses[-10:]) / 10 < 0.3 < losses[0]
    assert pair_accuracy(rm, held_out) >= 0.95


def test_a_score_does_not_depend_on_the_padding_beside_it():
    from engine.model.reward import scores

    rm = _reward_model()
    torch.nn.init.normal_(rm.head.weight)
    short, long = [1, 12, 13], [1, 14, 15, 16, 17, 18, 19]
    alone = scores(rm, [short])[0]
    beside = scores(rm, [short, long])[0]
    assert beside == pytest.approx(alone, abs=1e-5)
