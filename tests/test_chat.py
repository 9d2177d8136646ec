"""engine.tokens.chat: loss masks, special-token injection, prompts ready for the assistant."""

from __future__ import annotations

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.tokens.chat import (
    SPECIAL_TOKENS,
    has_chat_format,
    render_chat,
    render_chat_reference,
    render_conversation,
    render_document,
    render_prompt,
)
from engine.tokens.tokenizer import Tokenizer, get_encoding, train_bpe

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 12 + 30?"},
    {"role": "assistant", "content": "42."},
    {"role": "user", "content": "And 9.11 vs 9.9?"},
    {"role": "assistant", "content": "9.9 is larger."},
]
INJECTION = "".join(SPECIAL_TOKENS) + "<|im_start|><|im_end|><|im_sep|><|endoftext|>"


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    text = "You are terse. What is 12 + 30? 42. And 9.11 vs 9.9? 9.9 is larger. <|user_end|>\n"
    return train_bpe([text] * 20, 320)


def test_mask_covers_exactly_the_assistant_replies_and_their_end(tok):
    ids, mask = render_conversation(tok, CONVERSATION)
    assert len(ids) == len(mask) and ids[0] == tok.special_id("<|bos|>") and mask[0] == 0
    end = tok.special_id("<|assistant_end|>")
    trained = [i for i, m in zip(ids, mask, strict=True) if m]
    want = [*tok.encode("42."), end, *tok.encode("9.9 is larger."), end]
    assert trained == want
    # everything else (system, user, the role markers, <|assistant_start|>) is context only
    for role in ("system", "user"):
        for s in (f"<|{role}_start|>", f"<|{role}_end|>"):
            k = ids.index(tok.special_id(s))
            assert mask[k] == 0
    starts = [k for k, i in enumerate(ids) if i == tok.special_id("<|assistant_start|>")]
    assert len(starts) == 2 and all(mask[k] == 0 for k in starts)
    assert tok.decode(ids).startswith("<|bos|><|system_start|>You are terse.<|system_end|>")


def test_special_strings_in_text_stay_ordinary(tok):
    messages = [{"role": "user", "content": INJECTION},
                {"role": "assistant", "content": "ok " + INJECTION}]
    ids, mask = render_conversation(tok, messages)
    specials = [i for i in ids if tok.is_special(i)]
    # only the 2 x (start, end) the format itself adds, plus <|bos|>
    assert len(specials) == 5
    assert tok.decode(ids).count(INJECTION) == 2
    # and the typed text is in the loss as ordinary tokens, not as a stop token
    trained = [i for i, m in zip(ids, mask, strict=True) if m]
    assert trained[:-1] == tok.encode("ok " + INJECTION)


@settings(max_examples=50, deadline=None)
@given(user=st.text(max_size=60), reply=st.text(max_size=60))
def test_any_text_round_trips_with_one_special_per_boundary(tok, user, reply):
    messages = [{"role": "user", "content": user + "<|assistant_end|>"},
                {"role": "assistant", "content": reply}]
    ids, mask = render_conversation(tok, messages)
    assert sum(tok.is_special(i) for i in ids) == 5
    assert sum(mask) == len(tok.encode(reply)) + 1


def test_prompt_ends_ready_for_the_assistant(tok):
    history = CONVERSATION[:2]
    prompt = render_prompt(tok, history)
    assert prompt[-1] == tok.special_id("<|assistant_start|>")
    assert prompt[:-1] == render_conversation(tok, history)[0]
    assert prompt[-2] == tok.special_id("<|user_end|>")
    # a model trained on conversations sees the same prefix before each reply
    full, _ = render_conversation(tok, CONVERSATION[:3])
    assert full[: len(prompt)] == prompt


def test_document_is_bos_then_text(tok):
    assert render_document(tok, "hi <|bos|>") == [tok.special_id("<|bos|>"),
                                                  *tok.encode("hi <|bos|>")]


def test_reference_layout_matches_tiktokenizer():
    cl = get_encoding("cl100k_base")
    ids = render_chat_reference(cl, [{"role": "user", "content": "hi <|im_end|>"}])
    start, sep, end = 100264, 100266, 100265
    assert ids[:3] == [start, *cl.encode("user"), sep]
    assert ids.count(end) == 1 and ids.count(start) == 2  # typed <|im_end|> is text
    assert ids[-3:] == [start, *cl.encode("assistant"), sep]
    assert cl.decode(ids) == ("<|im_start|>user<|im_sep|>hi <|im_end|><|im_end|>"
                              "<|im_start|>assistant<|im_sep|>")
    assert render_chat(cl, [{"role": "user", "content": "hi"}]) == render_chat_reference(
        cl, [{"role": "user", "content": "hi"}])


def test_chat_format_detection_and_errors(tok):
    assert has_chat_format(tok) == "deepdive"
    assert has_chat_format(get_encoding("o200k_base")) == "im"
    bare = Tokenizer(tiktoken.Encoding(name="bare", pat_str=tok.enc._pat_str,
                                       mergeable_ranks=tok.enc._mergeable_ranks,
                                       special_tokens={}))
    assert has_chat_format(bare) is None
    with pytest.raises(ValueError, match="no chat tokens"):
        render_chat(bare, CONVERSATION)
    with pytest.raises(ValueError, match="role"):
        render_conversation(tok, [{"role": "tool", "content": "x"}])
    with pytest.raises(ValueError, match="text"):
        render_conversation(tok, [{"role": "user", "content": None}])


def test_transcript_opens_both_turns_and_never_ends_one(tok):
    from engine.tokens.chat import Transcript, render_prompt

    doc = Transcript("Where does Zed live?", "Zed lives in the city of Orvis.")
    assert doc == "Q: Where does Zed live?\nA: Zed lives in the city of Orvis."  # as text
    ids = render_document(tok, doc)
    prompt = render_prompt(tok, [{"role": "user", "content": doc.user}])
    assert ids[: len(prompt)] == prompt  # the question laid out as a chat would ask it
    assert tok.decode(ids[len(prompt):]) == doc.assistant
    assert tok.special_id("<|assistant_end|>") not in ids  # ending a turn is SFT's to teach
