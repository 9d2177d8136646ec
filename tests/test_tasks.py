"""Problems of one split, drawn distinct and answered exactly."""

import pytest

from engine.data import tasks as T
from engine.data import world as W
from engine.data.judge import NOT_CHECKABLE, judge
from engine.data.splits import key_split


@pytest.fixture(scope="module")
def world():
    return W.build_world(0)


def test_rl_problems_deterministic_and_split(world):
    train = T.rl_problems(world, "train", 300, 0)
    dev = T.rl_problems(world, "dev", 100, 1)
    assert train == T.rl_problems(world, "train", 300, 0)
    assert {p.family for p in train} == set(T.RL_FAMILIES)
    for problems, split in ((train, "train"), (dev, "dev")):
        for p in problems:
            key = W.count_key(p.key.split(":")[1]) if p.kind == "count" else p.key
            assert key_split(key) == split, p
    with pytest.raises(ValueError):
        T.rl_problems(world, "heldout", 3, 0)


def test_answers_are_exact(world):
    from engine.data.judge import recognise

    for p in T.eval_problems(world, "arith", 40) + T.eval_problems(world, "count_letters", 40):
        again = recognise(world, p.prompt)  # the typed-question reader agrees with the maker
        assert again is not None and again.answer == p.answer and again.key == p.key


def test_eval_families_distinct_and_curated(world):
    for fam in T.FAMILIES:
        ps = T.eval_problems(world, fam, 30, 0)
        assert ps and all(p.family == fam and p.answer for p in ps)
        assert len({p.prompt for p in ps}) == len(ps)  # n counts distinct prompts
    assert len(T.eval_problems(world, "identity", 100)) == 2  # as many as test wordings
    for p in T.eval_problems(world, "fact_heldout", 50):
        assert world.split[p.key.split(":")[0]] == "test"
    for p in T.eval_problems(world, "fact_known", 50):
        assert world.split[p.key.split(":")[0]] == "train"
    curated = T.curated_prompts(world)
    assert [p.family for p in curated] == ["fact_known", "fact_heldout", "unknown", "arith",
                                           "count_letters", "decimal_cmp", "identity", "open"]
    assert curated[3].answer == "12" and curated[5].answer == "9.9"
    assert judge(curated[7], "Welcome!") == NOT_CHECKABLE  # no exact answer: never a ✓ or ✗
    with pytest.raises(ValueError):
        T.eval_problems(world, "nope", 1)


def test_paraphrase_and_template_ask_the_same_items(world):
    para, tmpl = T.paraphrase_items(world, 40)
    assert len(para) == len(tmpl) == 40
    for p, t in zip(para, tmpl, strict=True):
        assert (p.answer, p.key, p.kind) == (t.answer, t.key, t.kind) and p.prompt != t.prompt


def test_heldout_facts_asked_are_stated_in_pretraining(world):
    text = "\n".join(W.pretrain_documents(world))
    statements = {f"{f.subject}:{f.kind}": f.statement for f in W.facts(world)}
    asked = T.eval_problems(world, "fact_heldout", 20)
    assert len(asked) == 20
    for p in asked:  # the sentence the base model is asked to complete is in its corpus
        assert f"{statements[p.key]} {p.answer}" in text
