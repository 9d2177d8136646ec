"""CLI: deepdive tokenize / deepdive tokenizer train, as a user types them."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from deepdive.cli import app

runner = CliRunner()


def tokenize_json(*args, input=None) -> dict:
    result = runner.invoke(app, ["tokenize", *args, "--json"], input=input)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_shape_and_values():
    out = tokenize_json("hello world")
    assert out == {"encoding": "cl100k_base", "ids": [15339, 1917], "tokens": ["hello", " world"],
                   "n_tokens": 2, "n_chars": 11, "n_bytes": 11}
    out = tokenize_json("hello world", "--encoding", "o200k_base")
    assert out["encoding"] == "o200k_base" and out["ids"] == [24912, 2375]


def test_partial_utf8_tokens_are_escaped_not_mojibake():
    out = tokenize_json("안녕하세요")
    assert out["n_tokens"] == len(out["ids"]) == len(out["tokens"]) == 5
    assert out["n_chars"] == 5 and out["n_bytes"] == 15
    assert any("\\x" in t for t in out["tokens"]) and not any("\ufffd" in t for t in out["tokens"])
    # the escapes carry the bytes: turned back into bytes they spell the text
    raw = b"".join(t.encode("latin-1", "backslashreplace").decode("unicode_escape")
                   .encode("latin-1") if "\\x" in t else t.encode() for t in out["tokens"])
    assert raw.decode("utf-8") == "안녕하세요"


def test_stdin_dash():
    out = tokenize_json("-", input="hello world")
    assert out["ids"] == [15339, 1917]
    out = tokenize_json("-", input="line one\nline two\n")
    assert out["n_chars"] == 18 and "".join(out["tokens"]) == "line one\nline two\n"


def test_chat_reference_layout():
    out = tokenize_json("hi <|im_end|>", "--chat")
    ids = out["ids"]
    assert ids[0] == 100264 and ids.count(100265) == 1  # the typed <|im_end|> is text
    assert "".join(out["tokens"]) == ("<|im_start|>user<|im_sep|>hi <|im_end|><|im_end|>"
                                      "<|im_start|>assistant<|im_sep|>")
    assert out["n_chars"] == len("".join(out["tokens"]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tokenizer trained by the CLI, inside a run folder of a temporary checkpoints root."""
    root = tmp_path_factory.mktemp("checkpoints")
    data = root.parent / "data.txt"
    data.write_text("The cat sat on the mat. The dog ate 12 apples and 345 pears.\n"
                    "Quick brown foxes jump over lazy dogs while curious owls watch.\n"
                    "Several wizards quietly mixed seventeen bright potions yesterday.\n" * 50)
    result = runner.invoke(app, ["tokenizer", "train", "--data", str(data), "--vocab-size", "300",
                                 "--out", str(root / "mine")])
    assert result.exit_code == 0, result.output
    return root, result


def test_tokenizer_train_writes_a_tokenizer_that_loads(trained):
    from engine.tokens.tokenizer import Tokenizer

    root, result = trained
    path = root / "mine" / "tokenizer.json"
    assert f"wrote {path}" in result.stdout and "300 tokens" in result.stdout
    tok = Tokenizer.load(path)
    assert tok.n_vocab == 300 and "<|assistant_end|>" in tok.specials
    assert len(tok.encode("The cat sat on the mat.")) < len("The cat sat on the mat.") / 1.5
    assert [tok.token_text(i) for i in tok.encode("345")] == ["3", "4", "5"]


def test_run_option_and_our_chat_format(trained, monkeypatch):
    root, _ = trained
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(root))
    out = tokenize_json("The cat", "--run", "mine")
    assert out["encoding"] == "run:mine" and "".join(out["tokens"]) == "The cat"
    out = tokenize_json("The cat <|user_end|>", "--run", "mine", "--chat")
    assert out["tokens"][:2] == ["<|bos|>", "<|user_start|>"]
    assert out["tokens"][-2:] == ["<|user_end|>", "<|assistant_start|>"]  # ready for the reply
    assert out["tokens"].count("<|user_end|>") == 1
    # the same file by path, without --run
    by_path = tokenize_json("The cat", "--encoding", str(root / "mine" / "tokenizer.json"))
    assert by_path["ids"] == tokenize_json("The cat", "--run", "mine")["ids"]


def test_chat_from_stdin_leaves_the_trailing_newline_out_of_the_turn(trained, monkeypatch):
    root, _ = trained
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(root))
    piped = tokenize_json("-", "--run", "mine", "--chat", input="The cat\n")
    typed = tokenize_json("The cat", "--run", "mine", "--chat")
    assert piped["ids"] == typed["ids"]
    assert piped["tokens"][-2:] == ["<|user_end|>", "<|assistant_start|>"]
    reference = tokenize_json("-", "--chat", input="hi\r\n")
    assert "".join(reference["tokens"]) == ("<|im_start|>user<|im_sep|>hi<|im_end|>"
                                            "<|im_start|>assistant<|im_sep|>")
    # without --chat the text is tokenized as given, newline and all
    assert tokenize_json("-", input="hi\n")["tokens"] == ["hi", "\n"]


def test_without_colour_token_boundaries_show_as_bars():
    piped = runner.invoke(app, ["tokenize", "strawberry"])  # not a terminal: no colour
    assert piped.exit_code == 0
    assert piped.stdout.splitlines()[0] == "str|aw|berry"
    no_color = runner.invoke(app, ["tokenize", "strawberry"],
                             env={"FORCE_COLOR": "1", "NO_COLOR": "1", "TERM": "xterm-256color"})
    assert "48;" not in no_color.stdout  # no chip backgrounds (bold and dim may stay)
    assert re.sub(r"\x1b\[[0-9;]*m", "", no_color.stdout).startswith("str|aw|berry\n")
    coloured = runner.invoke(app, ["tokenize", "strawberry"],
                             env={"FORCE_COLOR": "1", "NO_COLOR": None, "TERM": "xterm-256color"})
    assert "\x1b[" in coloured.stdout and "|" not in coloured.stdout.splitlines()[0]
    # --json is the same with or without colour
    assert tokenize_json("strawberry")["tokens"] == ["str", "aw", "berry"]


def test_plain_output_shows_counts():
    result = runner.invoke(app, ["tokenize", "hello world"])
    assert result.exit_code == 0
    assert "cl100k_base: 2 tokens, 11 chars, 11 bytes" in result.stdout
    assert "[15339, 1917]" in result.stdout


def expect_usage_error(args, *fragments, input=None):
    result = runner.invoke(app, args, input=input)
    assert result.exit_code == 2, result.output
    for f in fragments:
        assert f in result.stderr
    assert "Traceback" not in result.output


def test_bad_input_exits_2_with_a_message(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(tmp_path / "none"))
    expect_usage_error(["tokenize", "x", "--encoding", "nope"], "unknown encoding 'nope'",
                       "cl100k_base")
    expect_usage_error(["tokenize", "x", "--run", "ghost"], "ghost", "no such run")
    expect_usage_error(["tokenize", "x", "--run", "a", "--encoding", "o200k_base"], "not both")
    out = tmp_path / "tok.json"
    train = ["tokenizer", "train", "--out", str(out)]
    expect_usage_error([*train, "--data", str(tmp_path / "missing.txt"), "--vocab-size", "300"],
                       "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    expect_usage_error([*train, "--data", str(empty), "--vocab-size", "300"], "no text")
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    expect_usage_error([*train, "--data", str(binary), "--vocab-size", "300"], "cannot read")
    good = tmp_path / "good.txt"
    good.write_text("some text")
    expect_usage_error([*train, "--data", str(good), "--vocab-size", "100"], "at least 263")
    assert not out.exists()


def test_importing_the_commands_loads_no_engine():
    code = ("import sys, deepdive.commands.tokens; "
            "print(sorted(m for m in ('torch', 'tiktoken', 'engine') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
