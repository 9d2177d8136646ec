""""Held out" proved over the rows each stage really trains on (engine.train.pipeline
.training_data), for the micro and tiny presets: no test entity in SFT or RL, no test problem key
and no test wording anywhere, no evaluated nowhere-person in any stage."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache

import pytest

from engine.data import wordings as Wd
from engine.data import world as W
from engine.data.judge import recognise
from engine.data.splits import key_split
from engine.train.pipeline import training_data
from engine.train.presets import get_preset

DECIMAL = re.compile(r"(?<![\d.])\d+\.\d+(?!\d|\.\d)")
PLUS = re.compile(r"(?<![\d.])(\d+) ?\+ ?(\d+)(?!\d|\.\d)")


@cache
def stage_texts(preset: str) -> dict[str, list[str]]:
    """Every text each stage trains on; SFT with a probe that marked some facts unknown."""
    p = get_preset(preset)
    world = W.build_world(0)
    probed = {(f.subject, f.kind) for f in W.facts(world)[::7]}
    pre = training_data("pretrain", p, world, 0)["documents"]
    sft = training_data("sft", p, world, 0, probed)
    rl = training_data("rl", p, world, 0)
    return {
        "pretrain": pre,
        "sft": [m["content"] for c in sft["conversations"] for m in c] + (sft["documents"] or []),
        "rl": [m["content"] for prob in rl["train"] for m in prob.messages],
    }


def lines(texts: list[str]) -> list[str]:
    out = []
    for t in texts:
        for line in t.splitlines():
            out.append(line.removeprefix("Q: ").removeprefix("Worked example. "))
    return out


@pytest.fixture(scope="module")
def world():
    return W.build_world(0)


def test_shop_problems_are_keyed_by_their_decisive_sum(world):
    # the same two costs in any order, or as a plain sum, are one problem in one split
    a = W.shop_key("Tom", 3, W.ITEMS[0], 4, W.ITEMS[1], 5, 6)  # 15 + 24
    b = W.shop_key("Ana", 4, W.ITEMS[2], 3, W.ITEMS[3], 6, 5)  # 24 + 15
    assert a == b == W.add_key(15, 24)


def test_rehearsal_documents_name_no_heldout_entity(world):
    docs = W.documents_about_train(world, W.pretrain_documents(world))
    held = re.compile(r"\b(" + "|".join(world.heldout | set(world.unknown_people)) + r")\b",
                      re.IGNORECASE)
    assert len(docs) > 500 and not [d for d in docs if held.search(d)]


@pytest.mark.parametrize("preset", ["micro", "tiny"])
def test_no_heldout_entity_in_sft_or_rl(preset, world):
    held = sorted(world.heldout, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(held) + r")\b", re.IGNORECASE)
    for stage in ("sft", "rl"):
        leaks = [t for t in stage_texts(preset)[stage] if pattern.search(t)]
        assert not leaks, f"{stage} trains on held-out entities: {leaks[:3]}"
    # ...while pretraining does describe them (that is where held-out knowledge comes from)
    pre = "\n".join(stage_texts(preset)["pretrain"])
    assert all(re.search(rf"\b{name}\b", pre) for name in world.heldout)


@pytest.mark.parametrize("preset", ["micro", "tiny"])
def test_evaluated_unknown_people_appear_nowhere(preset, world):
    pattern = re.compile(r"\b(" + "|".join(world.unknown_people) + r")\b", re.IGNORECASE)
    for stage, texts in stage_texts(preset).items():
        assert not [t for t in texts if pattern.search(t)], stage


def problem_keys(text_lines: list[str], world) -> set[str]:
    """Every problem key a training text states, whatever its wording."""
    keys: set[str] = set()
    for line in text_lines:
        if (p := recognise(world, line)) is not None and p.family in (
                "arith", "count_letters", "decimal_cmp"):
            keys.add(p.key if p.kind != "count" else W.count_key(p.key.split(":")[1]))
        for a, b in PLUS.findall(line):
            if int(a) >= 10 and int(b) >= 10:  # column steps add single digits
                keys.add(W.add_key(int(a), int(b)))
        decimals = DECIMAL.findall(line)
        keys |= {W.dec_key(x, y) for i, x in enumerate(decimals) for y in decimals[i + 1:]
                 if W.canonical_decimal(x) != W.canonical_decimal(y)}
    return keys


@pytest.mark.parametrize("preset", ["micro", "tiny"])
def test_no_dev_or_test_problem_key_anywhere(preset, world):
    for stage, texts in stage_texts(preset).items():
        keys = problem_keys(lines(texts), world)
        assert len(keys) >= min(50, len(texts) // 3), f"{stage}: the key reader found too little"
        leaked = sorted(k for k in keys if key_split(k) != "train")  # test, and dev (tuning)
        assert not leaked, f"{stage} trains on held-out problems: {leaked[:5]}"
        words = [w for w in W.WORDS if key_split(W.count_key(w)) != "train"]
        text = "\n".join(texts)
        assert not [w for w in words if re.search(rf"\b{w}\b", text, re.IGNORECASE)], stage


@pytest.mark.parametrize("preset", ["micro", "tiny"])
def test_no_dev_or_test_wording_anywhere(preset):
    for stage, texts in stage_texts(preset).items():
        asked = [line for line in lines(texts) if any(True for _ in Wd.match_wrapped(line))]
        assert len(asked) >= min(50, len(texts) // 2), stage  # the matcher reads its questions
        leaked = [line for line in asked
                  if any(s != "train" for _, s, _, _ in Wd.match_wrapped(line))]
        assert not leaked, f"{stage} trains on dev or test wordings: {leaked[:3]}"


def test_sft_wraps_some_questions_in_polite_words_the_judge_reads():
    def questions(preset: str) -> list[str]:
        rows = training_data("sft", get_preset(preset), W.build_world(0), 0)["conversations"]
        return [c[0]["content"] for c in rows]

    def is_wrapped(q: str) -> bool:
        return q.startswith(Wd.POLITE_OPENINGS) or q.endswith(Wd.POLITE_CLOSINGS)

    asked = questions("tiny")
    wrapped = [q for q in asked if is_wrapped(q)]
    assert 0.1 < len(wrapped) / len(asked) < 0.3
    assert not any(is_wrapped(q) for q in questions("micro"))  # its preset wraps none
    for q in wrapped:  # what is inside is still a train wording, and a checkable question
        assert {s for _, s, _, _ in Wd.match_wrapped(q)} == {"train"}, q


def test_sft_uses_many_wordings_per_kind():
    texts = stage_texts("tiny")["sft"]
    used: dict[str, set[str]] = {}
    for line in texts:
        for kind, _, tmpl, _ in Wd.match_wrapped(line):
            used.setdefault(kind, set()).add(tmpl)
    for kind in Wd.WORDINGS:
        assert len(Wd.templates(kind, "train")) >= 10 and len(Wd.templates(kind, "test")) >= 2
        assert len(used[kind]) >= 6, kind  # rare kinds (a dozen countries) still vary


def test_splits_are_disjoint_and_stable_across_processes(world):
    for group in (world.countries, world.people, world.animals):
        splits = [world.split[e.name] for e in group]
        assert {"train", "dev", "test"} == set(splits)
    assert not set(world.unknown_people) & set(world.split)
    code = ("from engine.data.world import build_world; w = build_world(0); "
            "print(sorted(w.split.items()), sorted(w.unknown_split.items()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == f"{sorted(world.split.items())} {sorted(world.unknown_split.items())}"
    for split in ("train", "dev", "test"):
        for kind in Wd.WORDINGS:
            for t in Wd.templates(kind, split):  # a wording is in exactly one split
                filled = t.format(name="Zed", a=12, b=34, x="1.5", y="1.25", word="kitten",
                                  letter="t", who="Tom", pron="he", n1=2, n2=3, p1=4, p2=5,
                                  it1="cup", it2="egg", its1="cups", its2="eggs")
                assert {s for _, s, _ in Wd.match(filled)} == {split}, filled
