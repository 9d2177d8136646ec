"""engine/api.py, the engine facade, and its model client (engine/model/client.py: the one place
panes run inference; lazy, cached, thread-safe)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

TEXT = " ".join(f"The {a} {b} sat on the mat number {i}. Émile counts {i} apples."
                for i, (a, b) in enumerate([("red", "cat"), ("big", "dog"), ("old", "owl")] * 40))


def make_toy_runs(root: Path) -> Path:
    """A runs folder with real (untrained, random-weight) tiny models:

    - ``toy``:  base and sft, context 64 (short: prompts get truncated)
    - ``long``: base only, context 4096 (long generations, to cancel)

    Every stop token's embedding row is zero, so its logit is exactly 0 while the top-k of a
    random model's logits are positive: generations run to max_tokens or the context's end.
    """
    import torch

    from engine.model.checkpoint import save_checkpoint
    from engine.model.gpt import GPT, GPTConfig
    from engine.tokens.chat import SPECIAL_TOKENS
    from engine.tokens.tokenizer import train_bpe

    tok = train_bpe([TEXT], vocab_size=320)
    stops = [tok.special_id(s) for s in SPECIAL_TOKENS]
    for run, block, stages in (("toy", 64, ("base", "sft")), ("long", 4096, ("base",))):
        (root / run).mkdir(parents=True)
        tok.save(root / run / "tokenizer.json")
        for i, stage in enumerate(stages):
            torch.manual_seed(i)
            model = GPT(GPTConfig(vocab_size=tok.n_vocab, block_size=block, n_layer=2, n_head=2,
                                  n_embd=32))
            with torch.no_grad():
                model.transformer.wte.weight[stops] = 0.0
            save_checkpoint(root / run / stage, model, {"stage": stage, "step": 10 * (i + 1)})
    return root


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    return make_toy_runs(tmp_path_factory.mktemp("runs"))


@pytest.fixture
def client(runs_root, monkeypatch):
    from engine.api import ModelClient

    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(runs_root))
    return ModelClient(device="cpu")


def settings(**kw):
    from engine.model.sampler import SampleSettings

    return SampleSettings(**{"temperature": 1.0, "top_k": 50, "max_tokens": 12, "seed": 3, **kw})


def test_import_is_free_of_torch():
    heavy = ["torch", "tiktoken", "engine.data.world", "engine.data.judge", "engine.model.client"]
    code = f"import sys, engine.api; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_facade_names_all_resolve():
    import engine.api as api
    from engine.data import judge

    for name in dir(api):
        assert getattr(api, name) is not None, name
    assert api.judge is judge.judge and api.Problem.__module__ == "engine.data.tasks"
    assert api.ask_about("capital", "Varo") == "What is the capital of Varo?"
    with pytest.raises(AttributeError):
        api.no_such_name  # noqa: B018


def test_load_caches_model_and_returns_meta(client):
    meta = client.load("toy", "sft")
    assert meta["stage"] == "sft" and meta["step"] == 20
    assert meta["config"]["block_size"] == 64
    assert client.model("toy", "sft") is client.model("toy", "sft")
    assert client.model("toy", "base") is not client.model("toy", "sft")
    assert client.block_size("long", "base") == 4096
    assert client.tokenizer("toy") is client.tokenizer("toy")


def test_concurrent_loads_load_once(client, monkeypatch):
    calls = []
    real = client._load_from_disk

    def counting(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(client, "_load_from_disk", counting)
    models = []
    threads = [threading.Thread(target=lambda: models.append(client.model("toy", "base")))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(models) == 4 and all(m is models[0] for m in models)


def test_stream_matches_engine_sampler_and_is_seeded(client):
    from engine.model.sampler import stream

    tok = client.tokenizer("toy")
    prompt = [tok.special_id("<|bos|>"), *tok.encode("The red cat")]
    ours = [e.id for e in client.stream("toy", "base", prompt, settings(), [])]
    again = [e.id for e in client.stream("toy", "base", prompt, settings(), [])]
    direct = [e.id for e in stream(client.model("toy", "base"), tok, prompt, settings())]
    other = [e.id for e in client.stream("toy", "base", prompt, settings(seed=4), [])]
    assert len(ours) == 12 and ours == again == direct
    assert other != ours


def test_retrained_model_is_reloaded(client, runs_root, tmp_path):
    import os

    first = client.model("toy", "base")
    model_file = runs_root / "toy" / "base" / "model.safetensors"
    st = model_file.stat()
    os.utime(model_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # as a new save does
    assert client.model("toy", "base") is not first


def test_missing_run_or_stage_is_a_clear_error(client):
    from engine.model.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="no such run"):
        client.load("nope", "base")
    with pytest.raises(CheckpointError, match="no 'rl' model"):
        client.load("toy", "rl")


def test_generate_batch(client):
    tok = client.tokenizer("toy")
    prompts = [[tok.special_id("<|bos|>")], [tok.special_id("<|bos|>"), *tok.encode("The")]]
    rows = client.generate_batch("toy", "sft", prompts, settings(max_tokens=5))
    assert [len(r) for r in rows] == [5, 5]


def test_stream_many_interleaves_columns_and_reports_errors(client):
    from engine.api import StreamRequest

    tok = client.tokenizer("toy")
    prompt = [tok.special_id("<|bos|>")]
    requests = [StreamRequest("toy", "base", prompt, settings(max_tokens=8)),
                StreamRequest("toy", "sft", prompt, settings(max_tokens=5)),
                StreamRequest("toy", "rl", prompt, settings())]  # no rl model: an error
    got: dict[int, list] = {0: [], 1: [], 2: []}
    for column, item in client.stream_many(requests):
        got[column].append(item)
    assert [e.index for e in got[0]] == list(range(8))
    assert [e.index for e in got[1]] == list(range(5))
    assert len(got[2]) == 1 and isinstance(got[2][0], Exception)
    alone = [e.id for e in client.stream("toy", "sft", prompt, settings(max_tokens=5))]
    assert [e.id for e in got[1]] == alone  # running beside others changes nothing


def test_stream_many_cancel_stops_every_column(client):
    from engine.api import StreamRequest

    prompt = [client.tokenizer("long").special_id("<|bos|>")]
    cancel = threading.Event()
    requests = [StreamRequest("long", "base", prompt, settings(max_tokens=3000))] * 2
    n = 0
    for _, item in client.stream_many(requests, cancel=cancel):
        assert not isinstance(item, Exception)
        n += 1
        if n == 10:
            cancel.set()
    assert n < 100


def test_stream_many_stacks_same_shape_columns_and_runs_others_alone(client):
    from engine.api import StreamRequest

    tok = client.tokenizer("toy")
    prompt = [tok.special_id("<|bos|>"), *tok.encode("The old owl")]
    short = [tok.special_id("<|bos|>")]
    # toy/base and toy/sft share a shape (one stack); long/base has a context of its own.
    requests = [StreamRequest("toy", "base", prompt, settings(max_tokens=10, seed=1)),
                StreamRequest("long", "base", short, settings(max_tokens=6)),
                StreamRequest("toy", "sft", short, settings(max_tokens=7, temperature=0))]
    got: dict[int, list] = {0: [], 1: [], 2: []}
    for column, item in client.stream_many(requests):
        assert not isinstance(item, Exception), item
        got[column].append(item)
    for i, r in enumerate(requests):
        want = list(client.stream(r.run, r.stage, r.prompt_ids, r.settings, []))
        assert [(e.id, e.text, e.top[0][0]) for e in got[i]] == [
            (e.id, e.text, e.top[0][0]) for e in want]
        assert len(got[i]) == r.settings.max_tokens
    stacked = client._stacked
    assert stacked is not None and stacked[1].n_models == 2
    list(client.stream_many([requests[0], requests[2]]))
    assert client._stacked[1] is stacked[1]  # the same models again: no new copy of the weights


def test_stream_many_read_to_the_end_leaves_the_callers_cancel_unset(client):
    from engine.api import StreamRequest

    prompt = [client.tokenizer("toy").special_id("<|bos|>")]
    cancel = threading.Event()
    items = list(client.stream_many([StreamRequest("toy", "base", prompt, settings())] * 2,
                                    cancel=cancel))
    assert len(items) == 24 and not cancel.is_set()  # a caller may test it to tell a cancel
