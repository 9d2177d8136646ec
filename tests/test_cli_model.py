"""CLI: deepdive sample / runs / import gpt2, as a user types them."""

import json

import pytest
import torch
from typer.testing import CliRunner

import engine.model.checkpoint
from deepdive.cli import app
from engine.model.checkpoint import save_checkpoint
from engine.model.gpt import GPT, GPTConfig

runner = CliRunner()


class ByteTokenizer:
    """A stand-in tokenizer: ids 0..255 are bytes, then the chat specials."""

    def __init__(self):
        from engine.tokens.chat import SPECIAL_TOKENS as names

        self.specials = {n: 256 + i for i, n in enumerate(names)}
        self.n_vocab = 256 + len(names)

    def encode(self, text):
        return list(text.encode("utf-8"))

    def special_id(self, name):
        return self.specials[name]

    def token_bytes(self, i):
        names = {v: k for k, v in self.specials.items()}
        return names[i].encode() if i in names else bytes([i])

    def decode(self, ids):
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")


def tiny(block=64) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=263, block_size=block, n_layer=2, n_head=2, n_embd=32))


@pytest.fixture
def fake_run(root, monkeypatch):
    """A run whose model is real but whose tokenizer is the byte stand-in."""
    model = tiny()
    save_checkpoint(root / "r1" / "base", model, {"step": 40, "metrics": {"loss": 2.5}})
    loaded = {}

    def load(run, stage="base", device="cpu"):
        m, meta = engine.model.checkpoint.load_checkpoint(root / run / stage, device)
        loaded["model"] = m
        return m, ByteTokenizer(), meta

    monkeypatch.setattr(engine.model.checkpoint, "load_run_model", load)
    return loaded


def test_sample_streams_text(fake_run):
    result = runner.invoke(app, ["sample", "--run", "r1", "-t", "0", "-n", "6", "hello"])
    assert result.exit_code == 0, result.output
    assert "6 tokens" in result.stderr and "stopped: max tokens" in result.stderr


def test_sample_json_one_object_per_token_then_summary(fake_run):
    result = runner.invoke(app, ["sample", "--run", "r1", "--temperature", "0", "--max-tokens",
                                 "5", "--json", "hi"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.strip().splitlines()]
    tokens, summary = lines[:-1], lines[-1]
    assert len(tokens) == 5 and summary["summary"] and summary["tokens"] == 5
    for t in tokens:
        assert set(t) == {"index", "id", "text", "prob", "top"}
        assert t["top"][0]["id"] == t["id"]  # greedy: the likeliest
    # The ids are what greedy decoding of the model gives.
    model, ids = fake_run["model"], [256] + list(b"hi")
    for t in tokens:
        with torch.no_grad():
            ids.append(int(model(torch.tensor([ids]))[0][0, -1].argmax()))
        assert t["id"] == ids[-1]


def test_sample_seed_reproducible(fake_run):
    args = ["sample", "--run", "r1", "-n", "8", "--seed", "3", "--json", "x"]
    a = runner.invoke(app, args).stdout.splitlines()[-1]
    b = runner.invoke(app, args).stdout.splitlines()[-1]
    assert json.loads(a)["text"] == json.loads(b)["text"]


def test_sample_long_prompt_shows_truncation_notice(fake_run):
    result = runner.invoke(app, ["sample", "--run", "r1", "-n", "4", "--json", "y" * 200])
    assert result.exit_code == 0
    assert "notice" in result.stderr and "dropped" in result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["dropped"] == 201 - 60


def test_sample_chat_mode_uses_the_template(fake_run):
    result = runner.invoke(app, ["sample", "--run", "r1", "--chat", "-n", "3", "--json", "hey"])
    assert result.exit_code == 0, result.output
    # <|bos|> <|user_start|> h e y <|user_end|> <|assistant_start|>
    assert json.loads(result.stdout.splitlines()[-1])["prompt_tokens"] == 7


def test_sample_errors_exit_2(root, fake_run):
    result = runner.invoke(app, ["sample", "--run", "nope", "hi"])
    assert result.exit_code == 2 and "nope" in result.stderr and "no such run" in result.stderr
    result = runner.invoke(app, ["sample", "--run", "r1", "--stage", "dpo", "hi"])
    assert result.exit_code == 2 and "--stage" in result.stderr and "base" in result.stderr
    result = runner.invoke(app, ["sample", "--run", "r1", "--stage", "../r1/base", "hi"])
    assert result.exit_code == 2 and "--stage" in result.stderr


@pytest.mark.parametrize("args, option", [
    (["--temperature", "-1"], "--temperature"),
    (["-t", "nan"], "--temperature"),
    (["--top-k", "-3"], "--top-k"),
    (["--top-p", "0"], "--top-p"),
    (["--top-p", "1.5"], "--top-p"),
    (["--max-tokens", "0"], "--max-tokens"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**64)], "--seed"),
])
def test_each_bad_sampling_setting_is_named(root, fake_run, args, option):
    result = runner.invoke(app, ["sample", "--run", "r1", *args, "hi"])
    assert result.exit_code == 2, result.output
    assert option in result.output
    others = {"--temperature", "--top-k", "--top-p", "--max-tokens", "--seed"} - {option}
    assert not [o for o in others if o in result.output], result.output  # only the bad one


def test_sample_any_stage_the_run_has(root, fake_run):
    save_checkpoint(root / "r1" / "sft_control", tiny(), {"step": 5, "metrics": {}})
    result = runner.invoke(app, ["sample", "--run", "r1", "--stage", "sft_control", "-n", "3",
                                 "--json", "hi"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["stage"] == "sft_control"
    result = runner.invoke(app, ["sample", "--run", "r1", "--stage", "rl", "hi"])
    assert result.exit_code == 2 and "base, sft_control" in result.stderr


def test_ctrl_c_ends_the_line_and_sums_up(fake_run, monkeypatch):
    import engine.model.sampler

    real = engine.model.sampler.stream

    def interrupted(*args, **kwargs):  # three tokens, then the user presses Ctrl+C
        for k, event in enumerate(real(*args, **kwargs)):
            if k == 3:
                raise KeyboardInterrupt
            yield event

    monkeypatch.setattr(engine.model.sampler, "stream", interrupted)
    result = runner.invoke(app, ["sample", "--run", "r1", "-n", "50", "hi"])
    assert result.exit_code == 130
    assert result.stdout.endswith("\n")  # the shell's prompt starts on a line of its own
    assert "Traceback" not in result.output and "Aborted" not in result.output
    (summary,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert "3 tokens" in summary and "tok/s" in summary and "interrupted" in summary
    as_json = runner.invoke(app, ["sample", "--run", "r1", "-n", "50", "--json", "hi"])
    last = json.loads(as_json.stdout.splitlines()[-1])
    assert last["summary"] and last["tokens"] == 3 and last["stop"] == "interrupted"


def test_sample_missing_stage_exit_2(fake_run, root, monkeypatch):
    monkeypatch.undo()  # the real loader, which checks the stage before the tokenizer
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(root))
    result = runner.invoke(app, ["sample", "--run", "r1", "--stage", "rl", "hi"])
    assert result.exit_code == 2 and "no 'rl' model" in result.stderr


def test_runs_lists_stages_step_loss_size(root):
    save_checkpoint(root / "alpha" / "base", tiny(), {"step": 100, "metrics": {"loss": 3.25}})
    save_checkpoint(root / "alpha" / "sft", tiny(), {"step": 20, "metrics": {"val_loss": 1.5}})
    result = runner.invoke(app, ["runs"])
    assert result.exit_code == 0, result.output
    assert "alpha" in result.stdout and "3.250" in result.stdout and "1.500" in result.stdout
    assert "KB" in result.stdout
    rows = json.loads(runner.invoke(app, ["runs", "--json"]).stdout)
    assert rows[0]["stages"]["base"]["step"] == 100
    size = (root / "alpha" / "base" / "model.safetensors").stat().st_size
    assert rows[0]["stages"]["base"]["bytes"] == size


def test_runs_empty(root):
    result = runner.invoke(app, ["runs"])
    assert result.exit_code == 0 and "No runs" in result.stdout


def test_import_needs_exactly_one_source(root, tmp_path):
    assert runner.invoke(app, ["import", "gpt2"]).exit_code == 2
    result = runner.invoke(app, ["import", "gpt2", "--from", str(tmp_path / "none")])
    assert result.exit_code == 2 and "missing" in result.stderr
