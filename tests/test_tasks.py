"""Problems and the exact verifier."""

import re

import pytest

from engine import tasks as T
from engine import world as W


@pytest.fixture(scope="module")
def world():
    return W.build_world(0)


def _q(p):
    return p.messages[0]["content"]


def test_verify_right_wrong_malformed():
    p = T.Problem("arith", [{"role": "user", "content": "What is 457 + 68?"}], "525")
    assert T.verify(p, "Ones: ...\nAnswer: 525") == 1.0
    assert T.verify(p, "Answer: 415\nno wait\nAnswer: 525.") == 1.0  # last occurrence
    assert T.verify(p, "Answer: 525\nAnswer: 415") == 0.0
    assert T.verify(p, "Answer: 415") == 0.0
    assert T.verify(p, "525") == 0.0  # malformed: no Answer line
    assert T.verify(p, "") == 0.0 and T.verify(p, None) == 0.0
    d = T.Problem("decimal_cmp", [], "9.9")
    assert T.verify(d, "Answer: 9.9") == 1.0 and T.verify(d, "Answer: 9.11") == 0.0
    assert T.verify(d, "Answer: 9.90") == 0.0
    u = T.Problem("unknown", [], W.IDK)
    assert T.verify(u, "I don't know who Zed is. Answer: I don't know") == 1.0
    assert T.verify(u, "Zed lives in Tamsin. Answer: Tamsin") == 0.0
    i = T.Problem("identity", [], "deepdive")
    assert T.verify(i, W.IDENTITY) == 1.0 and T.verify(i, "I am a baker.") == 0.0
    assert T.verify(T.Problem("identity", [], ""), W.IDENTITY) == 0.0


def test_sft_solutions_verify(world):
    for conv in W.sft_conversations(world, labeler_error_rate=0.0, n=300):
        q, a = conv[0]["content"], conv[1]["content"]
        if (exp := W.expected_arith(q)) is not None:
            assert T.verify(T.Problem("arith", conv[:1], str(exp)), a) == 1.0


def test_rl_problems_deterministic_and_split(world):
    train = T.rl_problems(world, "train", 300, 0)
    held = T.rl_problems(world, "heldout", 300, 1)
    assert train == T.rl_problems(world, "train", 300, 0)
    assert {p.family for p in train} == set(T.RL_FAMILIES)
    train_qs = {_q(p) for p in train}
    held_qs = {_q(p) for p in held}
    assert not train_qs & held_qs
    corpus = "\n".join(W.pretrain_documents(world)) + "\n".join(
        m["content"] for c in W.sft_conversations(world) for m in c)
    for p in held:
        if p.family == "arith" and (m := re.match(r"What is (\d+) \+ (\d+)\?", _q(p))):
            assert f"{m[1]} + {m[2]}" not in corpus
        assert _q(p) not in corpus
    with pytest.raises(ValueError):
        T.rl_problems(world, "test", 3, 0)


def test_answers_are_exact(world):
    for p in T.rl_problems(world, "heldout", 60, 3):
        if m := re.match(r"What is (\d+) \+ (\d+)\?", _q(p)):
            assert p.answer == str(int(m[1]) + int(m[2]))
        if m := re.match(r"How many times does the letter (\w) appear in (\w+)\?", _q(p)):
            assert p.answer == str(m[2].count(m[1]))


def test_eval_families_and_curated(world):
    for fam in T.FAMILIES:
        ps = T.eval_problems(world, fam, 5, 0)
        assert len(ps) == 5 and all(p.family == fam and p.answer for p in ps)
    for p in T.eval_problems(world, "fact_heldout", 20):
        assert any(name in _q(p) for name in world.heldout)
    curated = T.curated_prompts(world)
    assert [p.family for p in curated] == ["fact", "fact_heldout", "unknown", "arith",
                                           "count_letters", "decimal_cmp", "identity"]
    assert curated[3].answer == "12" and curated[5].answer == "9.9"
    with pytest.raises(ValueError):
        T.eval_problems(world, "nope", 1)


def test_fact_completions_match_pretraining(world):
    text = "\n".join(W.pretrain_documents(world))
    pairs = T.fact_completions(world, "heldout", 20)
    assert len(pairs) == 20
    for prefix, word in pairs:
        assert f"{prefix} {word}" in text
        assert any(name in prefix for name in world.heldout)
