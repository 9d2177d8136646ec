"""The embedded world: determinism, biographies, imperfect labelers, chat rendering."""

import re

import pytest

from engine.data import world as W


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


def test_pretraining_covers_every_entity_in_permuted_biographies(world):
    docs = W.pretrain_documents(world)
    text = "\n".join(docs)
    assert 50_000 < len(text) < 2_000_000
    for f in W.facts(world):  # every fact, held-out ones too, is stated in pretraining
        assert [d for d in docs if re.search(rf"\b{f.subject}\b", d) and f.answer in d
                and f.kind != "language"] or f.kind == "language", f
    for name in world.unknown_people:  # unknown people exist nowhere
        assert not re.search(rf"\b{name}\b", text)
    p = world.people[0]
    bios = [d for d in docs if d.count(p.name) >= 4 and not d.startswith(("Q:", "One morning"))]
    assert len(bios) >= 5 and len(set(bios)) >= 3  # several entries, sentences reordered
    for bio in bios:  # the full name in every sentence
        assert all(p.name in s for s in re.split(r"(?<=\.) ", bio))


def test_one_entitys_documents_never_share_a_window(world):
    docs = W.pretrain_documents(world)
    p = world.people[3]
    where = [i for i, d in enumerate(docs) if re.search(rf"\b{p.name}\b", d)]
    assert min(b - a for a, b in zip(where, where[1:], strict=False)) > 3


def test_qa_documents_are_about_train_entities_only(world):
    qa = [d for d in W.pretrain_documents(world) if d.startswith("Q: ")]
    assert len(qa) > 500
    held = re.compile(r"\b(" + "|".join(world.heldout) + r")\b")
    assert not [d for d in qa if held.search(d)]


def test_sft_has_every_kind_and_renders(world, sft):
    from engine.tokens.chat import render_conversation
    from engine.tokens.tokenizer import train_bpe

    text = _text(sft)
    assert "Ones:" in text and "carry 1" in text
    assert "is spelled" in text and "Tenths" in text
    assert W.IDENTITY in text and "I don't know" in text
    assert "I don't know" not in _text(W.sft_conversations(world, include_idk=False))
    tok = train_bpe(W.pretrain_documents(world)[:200], vocab_size=400)
    ids, mask = render_conversation(tok, sft[0])
    assert len(ids) == len(mask) and 0 < sum(mask) < len(mask)


def test_fact_replies_state_it_once_and_probed_facts_are_refused(world):
    convs = W.sft_conversations(world, n=400)
    facts = {f.sentence for f in W.facts(world)}
    replies = [c[1]["content"] for c in convs if c[1]["content"] in facts]
    assert len(replies) > 50 and not any("Answer:" in r for r in replies)
    unknown = {(f.subject, f.kind) for f in W.facts(world)}  # the probe knew nothing
    refused = W.sft_conversations(world, n=400, unknown_facts=unknown)
    assert not [c for c in refused if c[1]["content"] in facts]


def test_labelers_drop_carries(world):
    assert W.labeler_accuracy(world, 0.55) < 0.8
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
             if c[1]["content"].startswith(W.IDK + " who")]
    assert len(asked) > 150 and len(set(asked)) > 100  # not a short list learned by heart
    for name in set(asked):
        assert not re.search(rf"\b{name}\b", docs), name  # nobody read about them
        assert name not in world.unknown_people  # and the eval's unknown people stay unseen
