"""engine.tokens.bpe: the incremental trainer learns exactly the reference trainer's merges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.tokens import bpe
from engine.tokens.chat import SPECIAL_TOKENS
from engine.tokens.tokenizer import train_bpe

CORPORA = {
    "english": ["the quick brown fox jumps over the lazy dog. " * 3,
                "then the fox ran; the dog slept there, the end."],
    # one letter repeated: merges like (aa, aa) and (a, aaa) spell the same bytes; both
    # trainers must skip the second spelling the same way
    "runs": ["a" * 17, "aaaa aaaaaaa", "b" * 9 + "a" * 5, "aa aaa aaaa aaaaa"],
    "unicode": ["안녕하세요 안녕 세계", "café naïve café", "🙂🙂🙂 🚀🙂", "ééééé"],
    "digits_and_space": ["1234 5678 1234\n\n\t  x = 12 + 34;\r\n", "    if x:\n        y  "],
    "ties": ["ab cd ef gh", "ba dc fe hg"],  # all pairs equal: order decided by (left, right)
}


def both(texts, n):
    counts = bpe.count_chunks(texts)
    return bpe.train_merges(counts, n), bpe.train_merges_reference(counts, n)


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_incremental_equals_reference(name):
    fast, slow = both(CORPORA[name], 60)
    assert fast == slow
    assert fast  # something was learned
    bpe.merges_to_ranks(fast)  # one id per byte string


# Small alphabets make long shared substrings, so many merges and many count changes.
CORPUS = st.lists(st.text(st.sampled_from("ab c\n1é🙂"), max_size=40), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(texts=CORPUS, n=st.integers(1, 40))
def test_incremental_equals_reference_on_generated_corpora(texts, n):
    fast, slow = both(texts, n)
    assert fast == slow


def test_runs_out_of_pairs_gracefully():
    fast, slow = both(["ab"], 10)
    assert fast == slow == [(ord("a"), ord("b"))]


def test_digits_split_one_by_one():
    assert bpe.split_chunks("In 2024, 12345 apples") == [
        "In", " ", "2", "0", "2", "4", ",", " ", "1", "2", "3", "4", "5", " apples"]
    assert bpe.split_chunks("x٣٤") == ["x", "٣", "٤"]  # non-ASCII digits too
    # Even trained on text full of "2024", a number stays one token per digit.
    tok = train_bpe(["In 2024 and 2024 and 2024 we counted 2024 things. "] * 50, 320)
    assert [tok.token_text(i) for i in tok.encode("2024")] == ["2", "0", "2", "4"]
    assert len(tok.encode(" counted")) == 1  # while words do merge


def test_ascii_fast_path_splits_like_the_unicode_pattern():
    text = "Hello, world! It's 3:45pm.\n\n  \tWe'll see  \r\n(ok)   \n"
    assert bpe._SPLIT_ASCII.findall(text) == bpe._SPLIT.findall(text)


@pytest.fixture(scope="module")
def trained():
    texts = ["The model learns to add: 12 + 30 = 42. Then it learns to stop.\n",
             "안녕하세요! Tokens, tokens, tokens — and café au lait. 🙂\n"] * 30
    progress = []
    tok = train_bpe(texts, 300, progress=lambda done, total: progress.append((done, total)))
    return tok, progress


def test_trained_tokenizer_shape(trained):
    tok, progress = trained
    n_merges = 300 - 256 - len(SPECIAL_TOKENS)
    assert tok.n_vocab == 300
    assert progress[-1] == (n_merges, n_merges)
    assert [tok.special_id(s) for s in SPECIAL_TOKENS] == list(range(256 + n_merges, 300))
    assert len(tok.encode("The model learns")) < len("The model learns") / 2


@settings(max_examples=100, deadline=None)
@given(text=st.text(st.characters(exclude_categories=("Cs",)), max_size=120))
def test_trained_tokenizer_round_trips(trained, text):
    tok, _ = trained
    assert tok.decode(tok.encode(text)) == text


def test_train_bpe_rejects_bad_input():
    with pytest.raises(ValueError, match="at least"):
        train_bpe(["some text"], 100)
    with pytest.raises(ValueError, match="no text"):
        train_bpe(["", ""], 300)
