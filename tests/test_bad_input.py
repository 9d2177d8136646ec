"""Bad input: what a user can paste or type, thrown at every place that takes it.

Arbitrary Unicode (lone surrogates, NUL, bidi marks, combining marks, emoji ZWJ sequences,
special-token strings, a 1 MB paste) into the tokenizers, the Tokens pane, the sampler and the
model client; every ``deepdive`` command with a missing argument or an invalid value. Each
answer is either right (text round-trips, a stream of tokens) or a documented error
(ValueError, CheckpointError, exit 2 with a message); never another exception.
"""

from __future__ import annotations

import json
import math
import typing
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_client import make_toy_runs
from test_tokens_pane import column, paste, ready, screen_text, until
from textual.widgets import Input, TextArea
from typer.testing import CliRunner

from deepdive.cli import app as cli
from engine.api import (
    SPECIAL_TOKENS,
    CheckpointError,
    ModelClient,
    SampleSettings,
    StreamRequest,
    fit_prompt,
    get_encoding,
    prepare_prompt,
    reference_encodings,
    render_chat,
    token_pieces,
    train_bpe,
)
from tui.app import DeepdiveApp

# Special-token spellings a user might type: ours, tiktoken's, tiktokenizer's chat markers.
SPECIAL_STRINGS = [*SPECIAL_TOKENS, "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|im_sep|>",
                   "<|fim_prefix|>", "<|endofprompt|>", "<|<|bos|>|>", "<|bos"]
ODD = [
    "\ud800", "a\udfffb", "\udc80\ud83d",  # lone surrogates: no UTF-8 form at all
    "\x00", "nul\x00in\x00the\x00middle", "\x7f\x1b[31m\r\n",
    "\u200f\u202eevil.exe\u202c", "\u2066abc\u2069\u061c",  # bidi marks and overrides
    "e\u0301", "Z" + "\u0336\u0317\u0350" * 30,  # combining marks, stacked deep
    "👩\u200d👩\u200d👧\u200d👦", "🏳\ufe0f\u200d🌈🇰🇷👍🏽",  # ZWJ sequences, flags, skin tones
    "".join(SPECIAL_STRINGS), "\ufeff\u200b\u00a0\u3000", "\U0010ffff\ufffe\U000e0001",
]
FRAGMENT = st.one_of(
    st.text(max_size=12),  # any Unicode but surrogates
    st.characters(categories=["Cs"]),  # a lone surrogate
    st.sampled_from(ODD + SPECIAL_STRINGS),
)
TEXT = st.lists(FRAGMENT, max_size=8).map("".join)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def with_odd(f):
    for text in ["", *ODD]:
        f = example(text)(f)
    return f


def as_encoded(text: str) -> str:
    """What the encoders tokenize: text itself when it has a UTF-8 form; else tiktoken's repair
    (surrogates that spell a pair join into its character, a lone one becomes U+FFFD)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@pytest.fixture(scope="module")
def encodings() -> list:
    """Every offline reference encoding and a small BPE of our own."""
    ours = train_bpe(["The cat sat. 안녕하세요 💜 12 + 30 = 42.\n", "naïve café <b>\n"] * 10, 330)
    return [get_encoding(name) for name in reference_encodings()] + [ours]


# -- 1. tokenizers ---------------------------------------------------------------------------

@FAST
@given(text=TEXT)
@with_odd
def test_any_text_round_trips_and_never_becomes_special(encodings, text):
    for tok in encodings:
        ids = tok.encode(text)
        assert not any(tok.is_special(i) for i in ids), tok.name
        assert tok.decode(ids) == as_encoded(text), tok.name
        # the chips the Tokens pane and the CLI show spell the same text
        assert "".join(p.text for p in token_pieces(tok, ids)) == as_encoded(text), tok.name


@FAST
@given(text=TEXT)
@with_odd
def test_user_text_in_a_chat_adds_no_special_token(encodings, text):
    for tok in encodings:
        layout = [i for i in render_chat(tok, [{"role": "user", "content": ""}])
                  if tok.is_special(i)]
        chat = render_chat(tok, [{"role": "user", "content": text}])
        assert [i for i in chat if tok.is_special(i)] == layout, tok.name


def test_a_lone_surrogate_is_shown_as_a_replacement_character(encodings):
    for tok in encodings:
        assert tok.decode(tok.encode("a\ud800b")) == "a\ufffdb", tok.name
        pieces = token_pieces(tok, tok.encode("a\ud800b"))
        assert "\ufffd" in [p.text.strip() for p in pieces], tok.name


def test_typed_special_token_names_stay_ordinary_text(encodings):
    for tok in encodings:
        for name in sorted(tok.specials) + SPECIAL_STRINGS:
            ids = tok.encode(f"x{name}y")
            assert not any(tok.is_special(i) for i in ids), (tok.name, name)
            assert tok.decode(ids) == f"x{name}y"


def test_a_one_megabyte_paste_round_trips(encodings):
    unit = "Hello wörld! 안녕 e\u0301 \u200f\u202e 👩\u200d👩\u200d👧 <|endoftext|>\x00\n"
    text = unit * (1_000_000 // len(unit.encode()) + 1) + "\ud800"
    assert len(text.encode("utf-8", "surrogatepass")) > 1_000_000
    for tok in encodings:
        ids = tok.encode(text)
        assert not any(tok.is_special(i) for i in ids), tok.name
        assert tok.decode(ids) == text[:-1] + "\ufffd", tok.name


# -- 2. the Tokens pane ----------------------------------------------------------------------

PASTES = ["a\ud800b\udfff", "x\x00y", "\u200f\u202eabc\u202c", "e\u0301\u0301\u0301",
          "<|endoftext|><|im_start|><|bos|>", "👩\u200d👩\u200d👧"]


@pytest.mark.anyio
async def test_the_tokens_pane_survives_nasty_pastes(root, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPDIVE_EXPORT_DIR", str(tmp_path / "exports"))
    app = DeepdiveApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        tok = (await ready(pilot)).tok
        for text in PASTES:
            await paste(pilot, text)
            col = await ready(pilot, ids=tok.encode(text))
            n = len(col.analysis.ids)
            assert f"{n} tokens · {len(text)} chars" in screen_text(app), repr(text)
            assert not any(c.special for c in col.view.chips)  # typed markers stay text
        await paste(pilot, PASTES[0])
        col = await ready(pilot, ids=tok.encode(PASTES[0]))
        assert "\ufffd" in [c.text for c in col.view.chips]  # the surrogate, shown replaced
        await app.query_one("#tokens-pane").run_action("export")
        out = tmp_path / "exports"
        await until(pilot, lambda: list(out.glob("*.json")), "the export")
        (path,) = out.glob("*.json")
        assert json.loads(path.read_text(encoding="utf-8"))["source"] == PASTES[0]
        assert app.is_running
    assert not [n for n in app._notifications if n.severity == "error"]


@pytest.mark.anyio
async def test_the_tokens_pane_counts_a_megabyte_and_a_nasty_chat(root):
    big = "Hello wörld 안녕 \u202e💜 <|bos|>\x00\n" * 25_000  # about 1 MB
    app = DeepdiveApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await ready(pilot)
        await paste(pilot, big)
        col = column(app)
        await until(pilot, lambda: col.analysis is not None and col.analysis.n_chars == len(big),
                    "the megabyte to encode", timeout=60)
        assert f"{len(col.analysis.ids)} tokens · {len(big)} chars" in screen_text(app)
        await pilot.press("ctrl+t")  # chat mode: the user's turn gets the surrogate
        await until(pilot, lambda: col.analysis is not None and col.analysis.chat, "chat mode")
        app.query_one("#chat-user", Input).value = "hi \ud800 <|im_end|>"
        await until(pilot, lambda: col.analysis is not None and col.analysis.chat
                    and "\ufffd" in [c.text.strip() for c in col.view.chips], "the nasty turn")
        assert "tokens (chat format)" in screen_text(app)
        assert app.query_one("#tok-text", TextArea).text == big and app.is_running


# -- 3. the sampler and the model client -----------------------------------------------------

PROMPTS = ["", "word " * 200, "".join(SPECIAL_STRINGS), "a\ud800b\udfff", "\x00\u202e\u200f"]


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    return make_toy_runs(tmp_path_factory.mktemp("runs"))  # context 64: long prompts overflow


@pytest.fixture
def client(runs_root, monkeypatch) -> ModelClient:
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(runs_root))
    return ModelClient(device="cpu")


def sampling(**kw) -> SampleSettings:
    return SampleSettings(**{"temperature": 1.0, "top_k": 50, "max_tokens": 6, "seed": 1, **kw})


def assert_well_formed(events, block: int, prompt_len: int, vocab: int) -> None:
    """A stream a pane can show: in order, ids in the vocabulary, real probabilities, text
    that is printable UTF-8 (an unfinished character held back, never a surrogate)."""
    assert 1 <= len(events) <= 6 and prompt_len + len(events) <= block
    assert [e.index for e in events] == list(range(len(events)))
    for e in events:
        assert 0 <= e.id < vocab and 0.0 <= e.prob <= 1.0 and not math.isnan(e.prob)
        e.text.encode("utf-8")  # raises on a lone surrogate


@pytest.mark.parametrize("chat", [False, True], ids=["raw", "chat"])
@pytest.mark.parametrize("text", PROMPTS, ids=["empty", "long", "specials", "surrogate", "bidi"])
def test_nasty_prompts_stream_well_formed(client, text, chat):
    tok = client.tokenizer("toy")
    ids, stops = prepare_prompt(tok, text, chat)
    layout, _ = prepare_prompt(tok, "", chat)
    assert [i for i in ids if tok.is_special(i)] == [i for i in layout if tok.is_special(i)]
    kept, dropped = fit_prompt(ids, 64, 6)
    assert kept == ids[dropped:] and (dropped > 0 or text != PROMPTS[1])  # cut from the left
    events = list(client.stream("toy", "sft", ids, sampling(), stops))
    assert_well_formed(events, 64, len(kept), tok.n_vocab)
    rows = client.generate_batch("toy", "sft", [ids, ids[:1]], sampling(), stops)
    assert all(1 <= len(r) <= 6 for r in rows)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=TEXT)
def test_any_text_as_a_prompt_streams(client, text):
    tok = client.tokenizer("toy")
    ids, stops = prepare_prompt(tok, text, chat=True)
    kept, _ = fit_prompt(ids, 64, 6)
    events = list(client.stream("toy", "sft", ids, sampling(seed=len(text)), stops))
    assert_well_formed(events, 64, len(kept), tok.n_vocab)


BAD_IDS = [[], [-1], [10**9], [1.5], ["a"], [None]]


@pytest.mark.parametrize("ids", BAD_IDS, ids=repr)
def test_bad_prompt_ids_are_a_clear_value_error(client, ids):
    with pytest.raises(ValueError, match="empty prompt|outside the model's vocabulary"):
        list(client.stream("toy", "sft", ids, sampling()))
    with pytest.raises(ValueError, match="empty prompt|outside the model's vocabulary"):
        client.generate_batch("toy", "sft", [[1, 2], ids], sampling())


def test_a_bad_column_never_ends_the_others(client):
    """stream_many: base and sft share a shape and decode stacked; a column with bad ids is
    reported as its own ValueError and the good columns still stream to the end."""
    tok = client.tokenizer("toy")
    good, _ = prepare_prompt(tok, "a\ud800 <|bos|>", chat=False)
    requests = [StreamRequest("toy", "sft", good, sampling()),
                StreamRequest("toy", "base", [10**9], sampling()),
                StreamRequest("toy", "base", [], sampling()),
                StreamRequest("toy", "base", good, sampling()),
                StreamRequest("nope", "base", good, sampling())]
    items: dict[int, list] = {}
    for i, item in client.stream_many(requests):
        items.setdefault(i, []).append(item)
    assert [type(x) for x in items[1]] == [ValueError]
    assert [type(x) for x in items[2]] == [ValueError]
    assert [type(x) for x in items[4]] == [CheckpointError]
    for i in (0, 3):
        assert_well_formed(items[i], 64, len(good), tok.n_vocab)


# -- 4. the command line ---------------------------------------------------------------------

runner = CliRunner()


def commands(command=None, path: tuple[str, ...] = ()):
    """(argv prefix, click command) of deepdive and every command and subcommand under it."""
    command = command or typer.main.get_command(cli)
    yield path, command
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from commands(sub, (*path, name))


def options(command) -> list:
    """The options of a command that take a value (not flags, not --help)."""
    return [p for p in command.params
            if p.param_type_name == "option" and not p.is_flag and p.opts[0] != "--help"]


def filler(param) -> list[str]:
    """A value that parses for a required parameter (the command never runs: another is
    missing)."""
    value = "300" if param.type_descriptor.annotation is int else "x"
    return [value] if param.param_type_name == "argument" else [param.opts[0], value]


def invalid_values(param) -> list[str]:
    """Values its type refuses while parsing: not a number, not a choice, out of range."""
    kind = param.type_descriptor.annotation
    if typing.get_origin(kind) is typing.Literal:
        return ["nope"]
    if kind in (int, float):
        bounds = [str(b - 1) for b in [param.min] if b is not None]
        bounds += [str(b + 1) for b in [param.max] if b is not None]
        return ["abc", *bounds]
    return []  # text and paths: their commands check them (the table below)


def parse_cases() -> list[list[str]]:
    """argv that must fail while parsing, for every command there is and every option."""
    cases = []
    for path, command in commands():
        cases.append([*path, "--no-such-option"])
        if path and getattr(command, "commands", None):
            cases.append(list(path))  # a group without its subcommand
        required = [p for p in command.params if p.required]
        for p in required:  # each required one missing, the others given
            cases.append([*path, *(v for q in required if q is not p for v in filler(q))])
        for p in options(command):
            cases.append([*path, p.opts[0]])  # the option without its value
            cases += [[*path, p.opts[0], bad] for bad in invalid_values(p)]
    return cases


@pytest.fixture
def no_long_runs(root, monkeypatch) -> list:
    """An empty runs root; the app and the server are recorded instead of run."""
    started: list = []
    monkeypatch.setattr(DeepdiveApp, "run", lambda self, *a, **k: started.append(self))
    from tui.serve_guard import GuardedServer

    monkeypatch.setattr(GuardedServer, "serve", lambda self, *a, **k: started.append(self))
    return started


def assert_usage_error(result, says: str = "") -> None:
    """Exit 2 with a message, no traceback, no other exception."""
    shown = f"{result.output!r} {result.exception!r}"
    assert result.exit_code == 2, shown
    assert result.exception is None or isinstance(result.exception, SystemExit), shown
    assert result.output.strip() and "Traceback" not in result.output
    assert says in result.output, shown


def test_the_walk_reaches_every_subcommand_and_option():
    """The parse cases cover what the walk finds: it must find the subcommands of the groups
    and their options, or the cases below would quietly test almost nothing."""
    found = {path: command for path, command in commands()}
    assert {("tokenize",), ("sample",), ("tokenizer", "train"), ("import", "gpt2")} <= set(found)
    assert {p.opts[0] for p in options(found[("serve",)])} >= {"--port", "--fps", "--run"}
    assert ["serve", "--port", "abc"] in parse_cases() and ["--pane", "nope"] in parse_cases()


@pytest.mark.parametrize("argv", parse_cases(), ids=" ".join)
def test_bad_arguments_exit_2_with_a_message(no_long_runs, argv):
    assert_usage_error(runner.invoke(cli, argv, terminal_width=100))
    assert not no_long_runs


LONG = "x" * 5000  # too long for a file name: Path checks raised OSError (Python < 3.13)


def checked_cases(tmp: Path) -> list[tuple[list[str], str]]:
    """(argv, what the message says): values only the command itself can refuse."""
    (tmp / "words.txt").write_text("some words to learn from\n")
    (tmp / "bad.jsonl").write_text('{"text": 3}\n')
    return [
        (["--run", LONG], "--run"),
        (["--run", "nul\x00name"], "not a run"),
        (["tokenize", "--encoding", "nope", "hi"], "unknown encoding"),
        (["tokenize", "--encoding", LONG, "hi"], "--encoding"),
        (["tokenize", "--encoding", "run:" + LONG, "hi"], "--encoding"),
        (["tokenize", "--run", "a\ud800", "hi"], "no such run"),
        (["sample", "--run", LONG, "hi"], "--run"),
        (["sample", "--run", "toy", "--stage", "../toy/base", "hi"], "--stage"),
        (["sample", "--run", "toy", "--device", "nope", "hi"], "device"),
        (["sample", "--run", "toy", "--temperature", "nan", "hi"], "--temperature"),
        (["sample", "--run", "toy", "--top-p", "inf", "hi"], "--top-p"),
        (["eval", "--run", "toy", "--device", "nope"], "device"),
        (["eval", "--run", "toy", "--split", "train"], "--split"),
        (["eval", "--run", LONG], "--run"),
        (["report", "--run", "toy"], "deepdive eval"),
        (["report", "--run", LONG], "--run"),
        (["train", "--stages", "bogus"], "bogus"),
        (["train", "--preset", "nope"], "unknown preset"),
        (["train", "--rl-families", "arith,bogus"], "unknown RL family bogus"),
        (["train", "--rl-families", ","], "unknown RL family (none given)"),
        (["train", "--preset", LONG], "unknown preset"),
        (["train", "--run", LONG], "--run"),
        (["train", "--preset", "micro", "--stages", "tokenizer", "--device", "nope",
          "--run", str(tmp / "never")], "device"),
        (["train", "--pretrain-data", str(tmp / "missing.txt"), "--run", str(tmp / "never")],
         "no such file or folder"),
        (["train", "--sft-data", str(tmp / "words.txt"), "--run", str(tmp / "never")],
         "unknown file type"),
        (["train", "--rl-data", str(tmp / "bad.jsonl"), "--on-bad", "refuse",
          "--run", str(tmp / "never")], "bad.jsonl:1: has no 'question' field"),
        (["train", "--rl-data", str(tmp / "bad.jsonl"), "--run", str(tmp / "never")],
         "no usable problems"),
        (["train", "--sft-data", str(tmp / "bad.jsonl"), "--run", str(tmp / "never")],
         "no usable conversations"),
        (["train", "--pretrain-data", LONG], "--pretrain-data"),
        (["train", "--sft-data", LONG], "--sft-data"),
        (["train", "--rl-data", LONG], "--rl-data"),
        (["demo", "--run", "toy"], "has no rl model"),
        (["demo", "--run", LONG], "--run"),
        (["serve", "--run", "toy"], "rl"),
        (["tokenizer", "train", "--data", str(tmp / "missing.txt"), "--vocab-size", "300",
          "--out", str(tmp)], "cannot read"),
        (["tokenizer", "train", "--data", str(tmp / "words.txt"), "--vocab-size", "10",
          "--out", str(tmp)], "--vocab-size"),
        (["tokenizer", "train", "--data", LONG, "--vocab-size", "300", "--out", str(tmp)],
         "--data"),
        (["data", "check", str(tmp / "missing.txt"), "--kind", "pretrain"], "no such file"),
        (["data", "check", LONG, "--kind", "rl"], "PATH"),
        (["data", "fetch", "nope"], "unknown dataset 'nope'"),
        (["data", "fetch", LONG], "NAME"),
        (["data", "fetch"], "give a dataset's name"),
        (["data", "check", str(tmp / "words.txt"), "--kind", "sft"], "unknown file type"),
        (["data", "check", str(tmp / "bad.jsonl"), "--kind", "pretrain", "--on-bad", "refuse"],
         "bad.jsonl:1: 'text' must be a string"),
        (["data", "check", str(tmp / "bad.jsonl"), "--kind", "pretrain"], "no usable documents"),
        (["data", "check", str(tmp / "words.txt"), "--kind", "pretrain", "--encoding", "nope"],
         "unknown encoding"),
        (["data", "check", str(tmp / "words.txt"), "--kind", "pretrain", "--encoding", LONG],
         "--encoding"),
        (["import", "gpt2"], "exactly one"),
        (["import", "gpt2", "--from", str(tmp)], str(tmp)),
        (["import", "gpt2", "--from", LONG], "--from"),
    ]


def test_values_the_commands_refuse_exit_2(no_long_runs, runs_root, monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(runs_root))
    cases = checked_cases(tmp_path)
    # a new command with options that take text needs its cases here (runs takes none)
    assert {a[0] for a, _ in cases} >= {path[0] for path, _ in commands() if path} - {"runs"}
    for argv, says in cases:
        result = runner.invoke(cli, argv, terminal_width=100)
        assert_usage_error(result, says)
    assert not no_long_runs and not (tmp_path / "never").exists()


def test_unreadable_stdin_and_odd_text_on_the_command_line(root):
    result = runner.invoke(cli, ["tokenize", "-"], input=b"\xff\xfe not utf-8")
    assert_usage_error(result, "cannot read stdin")
    cl100k = get_encoding("cl100k_base")
    for text in ODD:  # a surrogate is what Python makes of invalid bytes in argv
        result = runner.invoke(cli, ["tokenize", "--json", text])
        assert result.exit_code == 0, (text, result.output, result.exception)
        shown = json.loads(result.stdout)
        assert cl100k.decode(shown["ids"]) == as_encoded(text)
        assert not any(cl100k.is_special(i) for i in shown["ids"])
