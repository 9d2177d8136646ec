"""The sampler: greedy/seeded sampling, exact top-k/top-p, UTF-8 holding, stops, batching."""

import threading

import pytest
import torch

from engine.model.gpt import GPT, GPTConfig
from engine.model.sampler import (
    SampleSettings,
    fit_prompt,
    generate_batch,
    prepare_prompt,
    sampling_probs,
    stream,
)


class ByteTokenizer:
    """A stand-in tokenizer: ids 0..255 are bytes, then a few specials."""

    def __init__(self):
        self.specials = {"<|bos|>": 256, "<|assistant_end|>": 257}
        self.n_vocab = 258

    def encode(self, text):
        return list(text.encode("utf-8"))

    def special_id(self, name):
        return self.specials[name]

    def token_bytes(self, i):
        names = {v: k for k, v in self.specials.items()}
        return names[i].encode() if i in names else bytes([i])

    def decode(self, ids):
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")


TOK = ByteTokenizer()


def tiny(block=64, seed=0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=258, block_size=block, n_layer=2, n_head=2, n_embd=32)).eval()


class Scripted(torch.nn.Module):
    """A 'model' that emits a fixed token sequence (whatever its input), to test text handling."""

    def __init__(self, script, vocab=258, block=64):
        super().__init__()
        self.script, self.vocab = script, vocab
        self.config = GPTConfig(vocab_size=vocab, block_size=block, n_layer=1, n_head=1, n_embd=2)
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    def new_cache(self, batch=1, max_len=None, pad=None):
        return None

    def forward(self, idx, targets=None, cache=None, last_only=False):
        logits = torch.full((idx.shape[0], 1, self.vocab), -10.0)
        logits[:, 0, self.script[min(self.calls, len(self.script) - 1)]] = 10.0
        self.calls += 1
        return logits, None


def texts(model, prompt, settings, stops=()):
    return [e.text for e in stream(model, TOK, prompt, settings, stops)]


def test_greedy_is_argmax_and_reports_model_probs():
    model = tiny()
    prompt = [256] + TOK.encode("hello")
    events = list(stream(model, TOK, prompt, SampleSettings(temperature=0, max_tokens=5)))
    ids = list(prompt)
    for e in events:
        with torch.no_grad():
            logits, _ = model(torch.tensor([ids]))
        probs = torch.softmax(logits[0, -1], -1)
        assert e.id == int(probs.argmax()) and e.prob == pytest.approx(float(probs.max()), abs=1e-6)
        assert e.top[0][0] == e.id and len(e.top) == 5
        assert [p for _, _, p in e.top] == sorted([p for _, _, p in e.top], reverse=True)
        ids.append(e.id)
    assert [e.index for e in events] == [0, 1, 2, 3, 4]


def test_seeded_sampling_reproducible_and_seed_matters():
    model = tiny()
    s = SampleSettings(temperature=1.5, top_k=None, max_tokens=20, seed=123)
    a = [e.id for e in stream(model, TOK, [256], s)]
    b = [e.id for e in stream(model, TOK, [256], s)]
    c = [e.id for e in stream(model, TOK, [256], SampleSettings(temperature=1.5, top_k=None,
                                                               max_tokens=20, seed=124))]
    assert a == b and a != c


def test_top_k_mask_exact_even_with_ties():
    logits = torch.tensor([[3.0, 1.0, 2.0, 2.0, 2.0, -1.0]])
    probs = sampling_probs(logits, SampleSettings(temperature=1.0, top_k=2))
    assert int((probs > 0).sum()) == 2 and probs[0, 0] > 0
    kept = torch.tensor([3.0, 2.0]).softmax(-1)
    assert probs[0, 0].item() == pytest.approx(kept[0].item())


def test_top_p_keeps_smallest_set_reaching_p():
    probs_in = torch.tensor([[0.5, 0.25, 0.125, 0.0625, 0.0625]])
    logits = probs_in.log()
    s = SampleSettings(temperature=1.0, top_k=None, top_p=0.75)
    probs = sampling_probs(logits, s)
    assert torch.allclose(probs, torch.tensor([[2 / 3, 1 / 3, 0, 0, 0]]))
    s.top_p = 0.76
    probs = sampling_probs(logits, s)
    assert torch.allclose(probs, torch.tensor([[4 / 7, 2 / 7, 1 / 7, 0, 0]]))
    s.top_p = 0.01  # the likeliest token always survives
    assert torch.equal(sampling_probs(logits, s), torch.tensor([[1.0, 0, 0, 0, 0]]))


def test_temperature_sharpens_and_flattens():
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    cold = sampling_probs(logits, SampleSettings(temperature=0.5, top_k=None))
    hot = sampling_probs(logits, SampleSettings(temperature=2.0, top_k=None))
    assert cold[0, 0] > logits.softmax(-1)[0, 0] > hot[0, 0]


def test_sampled_tokens_stay_inside_top_k():
    model = tiny()
    s = SampleSettings(temperature=5.0, top_k=3, max_tokens=30, seed=0)
    for e in stream(model, TOK, [256], s):
        assert e.id in [i for i, _, _ in e.top[:3]]


def test_multibyte_characters_held_until_complete():
    snow = "☃".encode()  # three bytes
    model = Scripted([ord("a"), snow[0], snow[1], snow[2], ord("b")])
    out = texts(model, [256], SampleSettings(temperature=0, max_tokens=5))
    assert out == ["a", "", "", "☃", "b"]
    # Alternatives of a partial byte show as an escape, never mojibake.
    e = list(stream(Scripted([snow[0]]), TOK, [256], SampleSettings(temperature=0, max_tokens=1)))
    assert e[0].top[0][1] == "\\xe2"


def test_incomplete_tail_at_end_is_escaped_not_lost():
    snow = "☃".encode()
    out = texts(Scripted([ord("x"), snow[0], snow[1]]), [256],
                SampleSettings(temperature=0, max_tokens=3))
    assert out == ["x", "", "\\xe2\\x98"]
    # An invalid byte in the middle is escaped at once, never held forever.
    out = texts(Scripted([0xFF, ord("y")]), [256], SampleSettings(temperature=0, max_tokens=2))
    assert out == ["\\xff", "y"]


def test_stops_on_stop_id_and_yields_it_last():
    model = Scripted([ord("o"), ord("k"), 257, ord("z")])
    events = list(stream(model, TOK, [256], SampleSettings(temperature=0, max_tokens=10), [257]))
    assert [e.id for e in events] == [ord("o"), ord("k"), 257]
    assert events[-1].text == "<|assistant_end|>"


def test_stops_at_context_end_and_max_tokens():
    model = tiny(block=16)
    events = list(stream(model, TOK, list(range(1, 11)), SampleSettings(temperature=0,
                                                                         max_tokens=100)))
    assert len(events) == 16 - 8  # the prompt kept half the context (8), the rest generates
    assert len(list(stream(model, TOK, [256], SampleSettings(temperature=0, max_tokens=3)))) == 3


def test_cancel_stops_the_stream():
    cancel = threading.Event()
    events = []
    for e in stream(tiny(), TOK, [256], SampleSettings(max_tokens=50, seed=0), cancel=cancel):
        events.append(e)
        if len(events) == 4:
            cancel.set()
    assert len(events) == 4


def test_fit_prompt_truncates_from_left():
    assert fit_prompt(list(range(10)), 64, 20) == (list(range(10)), 0)
    kept, dropped = fit_prompt(list(range(100)), 64, 20)
    assert kept == list(range(56, 100)) and dropped == 56
    kept, dropped = fit_prompt(list(range(100)), 64, 500)  # always keep half the context
    assert len(kept) == 32 and dropped == 68


def test_generate_batch_greedy_equals_per_prompt_stream():
    model = tiny()
    prompts = [[256] + TOK.encode(t) for t in ["a", "hello there", "xyz", "the quick brown"]]
    s = SampleSettings(temperature=0, max_tokens=12)
    batch = generate_batch(model, prompts, s)
    for p, row in zip(prompts, batch, strict=True):
        assert row == [e.id for e in stream(model, TOK, p, s)]


def test_generate_batch_rows_near_the_context_end():
    """A long prompt fills its context early; the short ones keep going, exactly as alone."""
    model = tiny(block=32)
    prompts = [list(range(1, 17)), [256, 5, 6]]
    s = SampleSettings(temperature=0, max_tokens=25)
    batch = generate_batch(model, prompts, s)
    assert len(batch[0]) == 32 - 16 and len(batch[1]) == 25
    for p, row in zip(prompts, batch, strict=True):
        assert row == [e.id for e in stream(model, TOK, p, s)]


def test_generate_batch_cuts_each_row_after_its_stop():
    model = tiny()
    prompts = [[256] + TOK.encode(t) for t in ["a", "hello there", "xyz"]]
    s = SampleSettings(temperature=0, max_tokens=12)
    free = generate_batch(model, prompts, s)
    stop = free[1][3]
    cut = generate_batch(model, prompts, s, stop_ids=[stop])
    for f, c in zip(free, cut, strict=True):
        n = f.index(stop) + 1 if stop in f else len(f)
        assert c == f[:n]


def test_generate_batch_seeded_and_diverse():
    model = tiny()
    s = SampleSettings(temperature=1.0, top_k=None, max_tokens=10, seed=5)
    a = generate_batch(model, [[256]] * 8, s)
    assert a == generate_batch(model, [[256]] * 8, s)
    assert len({tuple(r) for r in a}) > 1  # N samples of one prompt differ


def test_prepare_prompt_raw_and_errors():
    ids, stops = prepare_prompt(TOK, "<|bos|>hi")
    assert ids == [256] + TOK.encode("<|bos|>hi") and stops == [256]  # user text stays text
    with pytest.raises(ValueError, match="no chat tokens"):
        prepare_prompt(TOK, "hi", chat=True)  # bos and assistant_end alone are not a chat format
