"""The embedded world: determinism, split leakage, imperfect labelers, chat rendering."""

import re

import pytest

from engine import world as W


@pytest.fixture(scope="module")
def world():
    return W.build_world(0)


@pytest.fixture(scope="module")
def sft(world):
    return W.sft_conversations(world, labeler_error_rate=0.3)


def _text(convs):
    return "\n".join(m["content"] for c in convs for m in c)


def test_same_seed_same_world_different_seed_different():
    a, b, c = W.build_world(0), W.build_world(0), W.build_world(1)
    assert a == b
    assert [p.name for p in a.people] != [p.name for p in c.people]
    assert W.pretrain_documents(a) == W.pretrain_documents(b)
    assert W.sft_conversations(a, n=200) == W.sft_conversations(b, n=200)


def test_pretraining_is_small_but_covers_every_entity(world):
    docs = W.pretrain_documents(world)
    text = "\n".join(docs)
    assert 50_000 < len(text) < 1_000_000
    for p in world.people:
        assert f"{p.name} was born in {p.born}" in text
    for name in world.heldout:  # held-out knowledge is in pretraining
        assert re.search(rf"\b{name}\b", text)
    for name in world.unknown_people:  # unknown people exist nowhere
        assert not re.search(rf"\b{name}\b", text)
    assert "strawberry is spelled s-t-r-a-w-b-e-r-r-y" in text
    assert len("\n".join(W.pretrain_documents(world, n_stories=10, n_skills=10))) < len(text)


def test_no_heldout_entity_in_sft(world, sft):
    text = _text(sft)
    assert 0.1 < len(world.heldout) / (len(world.people) + len(world.countries)
                                       + len(world.animals)) < 0.3
    for name in world.heldout:
        assert not re.search(rf"\b{name}\b", text), name


def test_sft_has_every_kind_and_renders(world, sft):
    from engine.chat import render_conversation
    from engine.tokenizer import train_bpe

    text = _text(sft)
    assert "Ones:" in text and "carry 1" in text
    assert "is spelled" in text and "Tenths" in text
    assert W.IDENTITY in text and "I don't know" in text
    assert "I don't know" not in _text(W.sft_conversations(world, include_idk=False))
    tok = train_bpe(W.pretrain_documents(world)[:200], vocab_size=400)
    ids, mask = render_conversation(tok, sft[0])
    assert len(ids) == len(mask) and 0 < sum(mask) < len(mask)


def test_labelers_drop_carries(world, sft):
    assert W.labeler_accuracy(sft) < 0.95
    assert W.labeler_accuracy(W.sft_conversations(world, labeler_error_rate=0.0)) == 1.0
    assert W.labeler_accuracy(world, labeler_error_rate=0.0) == 1.0
    slipped, total = W.add_solution(457, 68, drop_carry=True)
    assert total == 415 and "Answer: 415" in slipped  # consistent with the dropped carry
    good, total = W.add_solution(457, 68)
    assert total == 525 and "carry 1" in good and good.endswith("Answer: 525")
    assert W.add_solution(12, 34, drop_carry=True)[1] == 46  # no carry: no slip possible


def test_solutions_are_right():
    assert W.add_solution(999, 999)[1] == 1998
    assert W.count_solution("strawberry", "r")[1] == 3
    assert W.dec_solution("9.11", "9.9")[1] == "9.9"
    assert W.dec_solution("3.5", "12.25")[1] == "12.25"


def test_i_dont_know_chats_are_about_many_people_who_exist_nowhere(world, sft):
    docs = "\n".join(W.pretrain_documents(world))
    asked = [re.search(r"who (\w+) is", c[1]["content"]).group(1) for c in sft
             if c[1]["content"].startswith(W.IDK)]
    assert len(asked) > 150 and len(set(asked)) > 100  # not a short list learned by heart
    for name in set(asked):
        assert not re.search(rf"\b{name}\b", docs), name  # nobody read about them
        assert name not in world.unknown_people  # and the eval's unknown people stay unseen
