"""A user's data files: the readers (pretraining text, SFT conversations, GSM8K-style RL problems)
on good and bad rows, the token-shard cache, and ``deepdive data check``.

Every fixture is made here in tmp_path; nothing trains. Bad data is a ``path:line: what``
message, collected (on_bad="skip") or raised as DataFileError (on_bad="refuse"), never a
traceback."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import tiktoken
from typer.testing import CliRunner

import engine.data.shards as shards_mod
from deepdive.cli import app as cli
from engine.data.files import DataFileError, Problems
from engine.data.judge import judge, verify
from engine.data.readers import (
    read_conversations,
    read_documents,
    read_problems,
)
from engine.data.shards import rank_slice, token_dtype, token_shard
from engine.tokens.chat import SPECIAL_TOKENS, render_document
from engine.tokens.tokenizer import Tokenizer, get_encoding

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def jsonl(*rows: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    """The demo run's own BPE: it has <|bos|> and 1,024 ids (uint16)."""
    return Tokenizer.load(ROOT / "checkpoints" / "tiny" / "tokenizer.json")


# -- pretraining documents ----------------------------------------------------------------------

def test_txt_files_jsonl_and_folders_give_documents_in_sorted_order(tmp_path):
    write(tmp_path, "b/2.txt", "second file\n---\nthird doc\n---\n")
    write(tmp_path, "a.txt", "one document\nof two lines\n")
    write(tmp_path, "b/1.jsonl", jsonl({"text": "from jsonl"}, "", {"text": "again", "x": 1}))
    write(tmp_path, "notes.md", "not read")
    write(tmp_path, ".cache/x.txt", "hidden: not read")
    loaded = read_documents(tmp_path)
    assert loaded.items == ["one document\nof two lines\n", "from jsonl", "again",
                            "second file", "third doc"]
    assert [f.name for f in loaded.files] == ["a.txt", "1.jsonl", "2.txt"]
    assert loaded.problems.rows == []


BAD_PRETRAIN = [  # (file name, content, line, what the message says)
    ("e.txt", "", 1, "empty file"),
    ("e.jsonl", "  \n\n", 1, "empty file"),
    ("u.jsonl", b'{"text": "fine"}\n{"text": "caf\xe9"}\n', 2, "not valid UTF-8"),
    ("j.jsonl", jsonl({"text": "a"}, {"text": "b"}, '{"text": "c"'), 3, "not valid JSON"),
    ("m.jsonl", jsonl({"body": "a"}), 1, "has no 'text' field"),
    ("t.jsonl", jsonl({"text": "ok"}, {"text": ["a"]}), 2, "'text' must be a string, got a list"),
    ("s.jsonl", jsonl({"text": "  "}), 1, "'text' is empty"),
    ("o.jsonl", jsonl([1, 2]), 1, "expected a JSON object, got a list"),
    ("deep.jsonl", "[" * 100_000 + "\n", 1, "not valid JSON"),
    ("huge.jsonl", '{"text": ' + "9" * 5000 + "}\n", 1, "not usable JSON"),
    ("lone.jsonl", '{"text": "a\\ud800b"}\n', 1, "unpaired surrogate"),
    ("sep.txt", "---\n---\n", 1, "no text"),
]


@pytest.mark.parametrize("name,content,line,says", BAD_PRETRAIN, ids=[c[0] for c in BAD_PRETRAIN])
def test_bad_pretraining_rows_are_named_by_file_and_line(tmp_path, name, content, line, says):
    path = write(tmp_path, name, content)
    loaded = read_documents(path, on_bad="skip")
    [row] = loaded.problems.rows
    assert (row.path, row.line) == (path, line) and says in row.what
    assert str(row).startswith(f"{path}:{line}: ")
    with pytest.raises(DataFileError, match=f"^{path}:{line}: .*{says}"):
        read_documents(path, on_bad="refuse")


def test_a_txt_line_that_is_not_utf8_drops_only_its_document(tmp_path):
    path = write(tmp_path, "x.txt", b"good one\n---\nbad \xff here\nmore\n---\ngood two\n")
    loaded = read_documents(path)
    assert loaded.items == ["good one", "good two\n"]
    assert [(r.line, r.what[:17]) for r in loaded.problems.rows] == [(3, "not valid UTF-8 (")]


def test_skip_keeps_the_good_rows_and_refuse_stops_at_the_first_bad_one(tmp_path):
    path = write(tmp_path, "d.jsonl", jsonl({"text": "a"}, {"text": 1}, {"text": "b"}, "{"))
    loaded = read_documents(path)
    assert loaded.items == ["a", "b"] and [r.line for r in loaded.problems.rows] == [2, 4]
    with pytest.raises(DataFileError, match=r"d\.jsonl:2: "):
        read_documents(path, on_bad="refuse")
    with pytest.raises(ValueError, match="on_bad"):
        Problems("ignore")  # type: ignore[arg-type]


def test_missing_paths_unknown_types_and_empty_folders_are_refused(tmp_path):
    with pytest.raises(DataFileError, match="no such file or folder"):
        read_documents(tmp_path / "nowhere")
    with pytest.raises(DataFileError, match="unknown file type '.csv'"):
        read_documents(write(tmp_path, "x.csv", "a,b"))
    with pytest.raises(DataFileError, match="holds no .jsonl files"):
        read_problems(tmp_path)  # only a .csv in it


def test_a_utf8_byte_order_mark_and_crlf_lines_are_read_as_text(tmp_path):
    path = write(tmp_path, "w.jsonl", b'\xef\xbb\xbf{"text": "a"}\r\n{"text": "b"}\r\n')
    assert read_documents(path).items == ["a", "b"]


def test_parquet_without_pyarrow_names_the_optional_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails as if missing
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    path = write(tmp_path, "d.parquet", b"PAR1")
    for on_bad in ("skip", "refuse"):
        with pytest.raises(DataFileError, match=r"needs pyarrow: pip install -e '\.\[parquet\]'"):
            read_documents(path, on_bad=on_bad)


def test_parquet_text_column_with_row_numbers(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["first", None, "third"]}), path)
    loaded = read_documents(path)
    assert loaded.items == ["first", "third"]
    assert [(r.line, "string" in r.what) for r in loaded.problems.rows] == [(2, True)]
    with pytest.raises(DataFileError, match="not a parquet file"):
        read_documents(write(tmp_path, "broken.parquet", b"not parquet"))


# -- SFT conversations --------------------------------------------------------------------------

def msg(role: str, content: object = "text") -> dict:
    return {"role": role, "content": content}


def test_conversations_alternate_from_user_to_assistant_with_an_optional_system(tmp_path):
    rows = [{"messages": [msg("user", "hi"), msg("assistant", "hello")], "id": 7},
            {"messages": [msg("system", "be brief"), msg("user"), msg("assistant"),
                          msg("user"), msg("assistant")]}]
    loaded = read_conversations(write(tmp_path, "c.jsonl", jsonl(*rows)), on_bad="refuse")
    assert loaded.items[0] == [msg("user", "hi"), msg("assistant", "hello")]
    assert [m["role"] for m in loaded.items[1]] == ["system", "user", "assistant"] + [
        "user", "assistant"]


BAD_SFT = [  # (row, what the message says)
    ({"text": "x"}, "has no 'messages' field"),
    ({"messages": "hi"}, "'messages' must be a list, got a string"),
    ({"messages": []}, "'messages' is empty"),
    ({"messages": [msg("user"), "hello"]}, "message 2 must be an object"),
    ({"messages": [msg("user"), msg("bot")]}, "message 2 has role 'bot'"),
    ({"messages": [{"role": "user"}, msg("assistant")]}, "message 1 has no 'content' field"),
    ({"messages": [msg("user", 5), msg("assistant")]}, "'content' must be a string, got a number"),
    ({"messages": [msg("user"), msg("assistant", "")]}, "message 2 'content' is empty"),
    ({"messages": [msg("assistant"), msg("user")]}, "message 1 is assistant, expected user"),
    ({"messages": [msg("user"), msg("user"), msg("assistant")]}, "message 2 is user, expected"),
    ({"messages": [msg("user"), msg("system"), msg("assistant")]}, "message 2 is system"),
    ({"messages": [msg("system"), msg("system"), msg("user")]}, "message 2 is system"),
    ({"messages": [msg("user"), msg("assistant"), msg("user")]}, "must end with an assistant"),
    ({"messages": [msg("system")]}, "must end with an assistant"),
]


@pytest.mark.parametrize("row,says", BAD_SFT, ids=[s for _, s in BAD_SFT])
def test_bad_conversations_are_named_by_line(tmp_path, row, says):
    good = {"messages": [msg("user"), msg("assistant")]}
    path = write(tmp_path, "c.jsonl", jsonl(good, good, row, good))
    loaded = read_conversations(path)
    assert len(loaded.items) == 3
    [bad] = loaded.problems.rows
    assert bad.line == 3 and says in bad.what, bad
    with pytest.raises(DataFileError, match=r"c\.jsonl:3: "):
        read_conversations(path, on_bad="refuse")


# -- RL problems --------------------------------------------------------------------------------

def test_gsm8k_answers_become_problems_the_judge_checks(tmp_path):
    rows = [{"question": "Tom has 1,200 apples and buys 34 more. How many?",
             "answer": "He has 1200 + 34 = <<1200+34=1234>>1234.\n#### 1,234"},
            {"question": "What is 7 minus 10.5?", "answer": "7 - 10.5 = -3.5\n####  -3.5 "}]
    loaded = read_problems(write(tmp_path, "gsm.jsonl", jsonl(*rows)), on_bad="refuse")
    first, second = loaded.items
    assert (first.answer, second.answer) == ("1234", "-3.5")
    assert first.prompt == rows[0]["question"] and first.messages[0]["role"] == "user"
    assert verify(first, "1200 + 34 = 1234.\nAnswer: 1234") == 1.0
    assert verify(first, "Answer: 1,234") == 1.0
    assert verify(first, "The total is 1234.") == 1.0
    assert verify(first, "Answer: 1233") == 0.0
    assert verify(first, "Answer: 1234\nAnswer: 1233") == 0.0  # a contradiction is wrong
    assert verify(second, "Answer: -3.5") == 1.0 and verify(second, "Answer: 3.5") == 0.0
    assert judge(first, "no idea").correct is False


BAD_RL = [  # (row, what the message says)
    ({"answer": "#### 4"}, "has no 'question' field"),
    ({"question": 4, "answer": "#### 4"}, "'question' must be a string, got a number"),
    ({"question": "2+2?"}, "has no 'answer' field"),
    ({"question": "2+2?", "answer": 4}, "'answer' must be a string, got a number"),
    ({"question": "2+2?", "answer": "four"}, "no final answer after '####'"),
    ({"question": "2+2?", "answer": "#### four"}, "is not a number: 'four'"),
    ({"question": "2+2?", "answer": "#### "}, "is not a number: ''"),
]


@pytest.mark.parametrize("row,says", BAD_RL, ids=[s for _, s in BAD_RL])
def test_bad_problems_are_named_by_line(tmp_path, row, says):
    path = write(tmp_path, "p.jsonl", jsonl(row, {"question": "1+1?", "answer": "#### 2"}))
    loaded = read_problems(path)
    assert [p.answer for p in loaded.items] == ["2"]
    [bad] = loaded.problems.rows
    assert bad.line == 1 and says in bad.what, bad
    with pytest.raises(DataFileError, match=r"p\.jsonl:1: "):
        read_problems(path, on_bad="refuse")


# -- token shards -------------------------------------------------------------------------------

DOCS = [f"Document number {i} says hello." for i in range(10)] + ["it spells <|bos|> as text"]


def corpus(folder: Path) -> Path:
    write(folder, "data/a.txt", "\n---\n".join(DOCS[:5]))
    write(folder, "data/b.jsonl", jsonl(*({"text": d} for d in DOCS[5:])))
    return folder / "data"


@pytest.fixture
def counted(monkeypatch) -> list[int]:
    """How many documents the shard code tokenized."""
    calls: list[int] = []

    def counting(tok, text):
        calls.append(1)
        return render_document(tok, text)

    monkeypatch.setattr(shards_mod, "render_document", counting)
    return calls


def test_a_shard_holds_every_document_after_its_bos(tmp_path, tok):
    shard = token_shard(corpus(tmp_path), tok, tmp_path / "cache")
    expected = [i for d in DOCS for i in render_document(tok, d)]
    assert shard.tokens.dtype == np.dtype("<u2") and shard.tokens.tolist() == expected
    bos = tok.special_id("<|bos|>")
    assert np.flatnonzero(np.asarray(shard.tokens) == bos).tolist() == shard.doc_starts.tolist()
    assert len(shard.doc_starts) == len(DOCS)  # the typed "<|bos|>" made no document boundary
    assert not shard.reused and shard.problems == []


def test_a_shard_is_reused_and_rebuilt_when_a_file_changes(tmp_path, tok, counted):
    data, cache = corpus(tmp_path), tmp_path / "cache"
    first = token_shard(data, tok, cache)
    files = sorted(cache.iterdir())
    mtimes = [f.stat().st_mtime_ns for f in files]
    n_tokenized = len(counted)
    again = token_shard(data, tok, cache)
    assert again.reused and len(counted) == n_tokenized  # not tokenized a second time
    assert [f.stat().st_mtime_ns for f in sorted(cache.iterdir())] == mtimes
    assert again.tokens.tolist() == first.tokens.tolist()
    assert all(not f.name.endswith(".tmp") for f in files) and len(files) == 3
    write(data, "b.jsonl", jsonl({"text": "a changed file"}))
    changed = token_shard(data, tok, cache)
    assert not changed.reused and len(changed.doc_starts) == 6
    assert changed.header["key"] != first.header["key"]


def test_a_damaged_cached_shard_is_built_again(tmp_path, tok):
    data, cache = corpus(tmp_path), tmp_path / "cache"
    first = token_shard(data, tok, cache)
    expected = first.tokens.tolist()
    tokens_file = cache / f"{first.header['key']}.tokens"
    tokens_file.write_bytes(tokens_file.read_bytes()[:-2])  # a cut file
    again = token_shard(data, tok, cache)
    assert not again.reused and again.tokens.tolist() == expected


def test_the_shard_header_is_json_and_nothing_is_pickled(tmp_path, tok):
    shard = token_shard(corpus(tmp_path), tok, tmp_path / "cache")
    header = json.loads((tmp_path / "cache" / f"{shard.header['key']}.json").read_text())
    assert header["n_docs"] == len(DOCS) and header["dtype"] == "<u2"
    assert not any(f.suffix in (".pkl", ".npy", ".pickle") for f in (tmp_path / "cache").iterdir())


def test_bad_rows_are_kept_in_the_header_and_refused_from_the_cache(tmp_path, tok):
    data = tmp_path / "d"
    write(data, "x.jsonl", jsonl({"text": "fine"}, {"text": 3}))
    shard = token_shard(data, tok, tmp_path / "cache")
    assert [(p.line, p.path.name) for p in shard.problems] == [(2, "x.jsonl")]
    with pytest.raises(DataFileError, match=r"x\.jsonl:2: "):
        token_shard(data, tok, tmp_path / "cache", on_bad="refuse")
    with pytest.raises(DataFileError, match="no usable documents"):
        token_shard(write(tmp_path, "bad.jsonl", jsonl({"text": 3})), tok, tmp_path / "cache")


def test_a_tokenizer_without_bos_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no <\\|bos\\|>"):
        token_shard(corpus(tmp_path), get_encoding("cl100k_base"), tmp_path / "cache")


def test_the_val_split_is_the_last_documents_and_disjoint(tmp_path, tok):
    shard = token_shard(corpus(tmp_path), tok, tmp_path / "cache")
    train, val = shard.split(0.2)
    assert len(train) + len(val) == len(shard.tokens)
    assert val.tolist() == [i for d in DOCS[-2:] for i in render_document(tok, d)]
    assert train.tolist() == [i for d in DOCS[:-2] for i in render_document(tok, d)]
    assert shard.split(0.01)[1].tolist() == render_document(tok, DOCS[-1])  # at least one
    assert len(shard.split(0.0)[1]) == 0
    with pytest.raises(ValueError):
        shard.split(1.0)


@pytest.mark.parametrize("n_tokens", [1, 7, 100, 101])
def test_rank_slices_are_equal_disjoint_and_cover_all_but_the_remainder(n_tokens):
    for world in range(1, 5):
        if n_tokens < world:
            with pytest.raises(ValueError, match="cannot be shared"):
                rank_slice(n_tokens, 0, world)
            continue
        covered = [i for r in range(world) for i in range(n_tokens)[rank_slice(n_tokens, r, world)]]
        assert covered == list(range(n_tokens - n_tokens % world))  # disjoint, in order
        assert len({len(range(n_tokens)[rank_slice(n_tokens, r, world)])
                    for r in range(world)}) == 1
    for rank, world in [(-1, 2), (2, 2), (0, 0)]:
        with pytest.raises(ValueError, match="rank"):
            rank_slice(10, rank, world)


def test_uint16_when_the_vocabulary_fits_else_uint32(tmp_path):
    assert token_dtype(1024) == np.dtype("<u2") and token_dtype(2**16) == np.dtype("<u2")
    assert token_dtype(2**16 + 1) == np.dtype("<u4")
    cl100k = get_encoding("cl100k_base").enc  # a large vocabulary with our chat tokens added
    specials = {s: cl100k.n_vocab + i for i, s in enumerate(SPECIAL_TOKENS)}
    big = Tokenizer(tiktoken.Encoding("big", pat_str=cl100k._pat_str,
                                      mergeable_ranks=cl100k._mergeable_ranks,
                                      special_tokens=specials))
    shard = token_shard(corpus(tmp_path), big, tmp_path / "cache")
    assert shard.tokens.dtype == np.dtype("<u4")
    assert shard.tokens.tolist() == [i for d in DOCS for i in render_document(big, d)]
    assert max(shard.tokens) > 2**16  # the specials' ids survived


def test_the_cache_follows_deepdive_cache(tmp_path, monkeypatch, tok):
    monkeypatch.setenv("DEEPDIVE_CACHE", str(tmp_path / "c"))
    token_shard(corpus(tmp_path), tok)
    assert len(list((tmp_path / "c" / "shards").glob("*.json"))) == 1


# -- deepdive data check ------------------------------------------------------------------------

def check(*argv: str):
    result = runner.invoke(cli, ["data", "check", *argv], terminal_width=200)
    assert "Traceback" not in result.output and (
        result.exception is None or isinstance(result.exception, SystemExit)), result.output
    return result


def test_data_check_counts_and_lists_bad_rows(tmp_path):
    data = corpus(tmp_path)
    write(data, "c.jsonl", jsonl({"text": "x"}, "{oops"))
    result = check(str(data), "--kind", "pretrain")
    assert result.exit_code == 0, result.output
    assert f"{len(DOCS) + 1} documents" in result.output and "tokens (cl100k_base" in result.output
    assert f"{data / 'c.jsonl'}:2: not valid JSON" in result.output
    assert "1 bad row skipped" in result.output
    result = check(str(data), "--kind", "pretrain", "--on-bad", "refuse")
    assert result.exit_code == 2 and f"error: {data / 'c.jsonl'}:2: not valid JSON" in result.output


def test_data_check_sft_and_rl(tmp_path):
    sft = write(tmp_path, "c.jsonl", jsonl({"messages": [msg("user"), msg("assistant")]}))
    result = check(str(sft), "--kind", "sft")
    assert result.exit_code == 0 and "1 conversation\n" in result.output and "no bad rows" in (
        result.output)
    rl = write(tmp_path, "p.jsonl", jsonl({"question": "q", "answer": "#### 3"},
                                          {"question": "q", "answer": "3"}))
    result = check(str(rl), "--kind", "rl")
    assert result.exit_code == 0 and "1 problem\n" in result.output and ":2: " in result.output


@pytest.mark.parametrize("argv,says", [
    (["nowhere", "--kind", "rl"], "no such file or folder"),
    (["{bad}", "--kind", "sft"], "not valid JSON"),
    (["{bad}", "--kind", "sft", "--on-bad", "refuse"], ":1: not valid JSON"),
    (["{good}", "--kind", "pretrain", "--encoding", "nope"], "unknown encoding"),
    (["{good}", "--kind", "pretrain", "--encoding", "x" * 5000], "--encoding"),
    (["{good}", "--kind", "nope"], "nope"),
    (["{good}"], "--kind"),
])
def test_data_check_exits_2_with_a_message(tmp_path, argv, says):
    paths = {"{bad}": str(write(tmp_path, "bad.jsonl", "{oops\n")),
             "{good}": str(write(tmp_path, "good.txt", "text"))}
    result = check(*(paths.get(a, a) for a in argv))
    assert result.exit_code == 2 and says in result.output, result.output


def test_reading_never_writes_beside_the_data(tmp_path, tok):
    data = corpus(tmp_path)
    before = sorted(os.listdir(data))
    read_documents(data)
    token_shard(data, tok, tmp_path / "cache")
    assert sorted(os.listdir(data)) == before


def test_a_different_tokenizer_of_the_same_name_gets_its_own_shard(tmp_path):
    """The cache key covers the tokenizer's merges, not its name: a shard tokenized by one run's
    BPE is never reused for another's, and renaming a file is a different input too."""
    from engine.tokens.tokenizer import train_bpe

    path = write(tmp_path, "d.txt", "the river runs north past the old market\n")
    tok_a = train_bpe(["the river runs north"] * 40, 300)
    tok_b = train_bpe(["past the old market"] * 40, 300)
    assert tok_a.name == tok_b.name
    a = token_shard(path, tok_a, cache_dir=tmp_path / "cache")
    b = token_shard(path, tok_b, cache_dir=tmp_path / "cache")
    assert not b.reused and a.header["key"] != b.header["key"]
    assert list(b.tokens) != list(a.tokens)  # each holds its own tokenizer's ids
    path.rename(tmp_path / "e.txt")
    c = token_shard(tmp_path / "e.txt", tok_a, cache_dir=tmp_path / "cache")
    assert not c.reused and c.header["key"] != a.header["key"]
