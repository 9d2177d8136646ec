"""engine/model/stacked.py: several same-shape models decoding together give each row what
``engine.model.sampler.stream`` gives that model alone."""

import threading

import pytest
import torch

from engine.model.gpt import GPT, GPTConfig
from engine.model.sampler import SampleSettings, stream
from engine.model.stacked import StackedGPT, stack_key, stream_stacked


class ByteTokenizer:
    """ids 0..255 are bytes (so random models emit partial UTF-8 often), then two specials."""

    specials = {"<|bos|>": 256, "<|assistant_end|>": 257}
    n_vocab = 258

    def token_bytes(self, i):
        names = {v: k for k, v in self.specials.items()}
        return names[i].encode() if i in names else bytes([i])


TOK = ByteTokenizer()


def model(seed, block=64, arch="deepdive") -> GPT:
    torch.manual_seed(seed)
    m = GPT(GPTConfig(vocab_size=258, block_size=block, n_layer=2, n_head=2, n_embd=32,
                      arch=arch)).eval()
    with torch.no_grad():  # larger weights than init: peaked, distinct distributions per model
        for p in m.parameters():
            p.mul_(8.0)
    return m


PROMPTS = [[256, *b"The cat"], [256, *"Émile".encode()], [256, 84, 104, 101, 32, 100, 111, 103,
                                                          32, 115, 97, 116]]


def columns(models, prompts, settings, stops=None, cancel=None):
    out = {i: [] for i in range(len(models))}
    stops = stops or [[] for _ in models]
    for i, event in stream_stacked(models, [TOK] * len(models), prompts, settings, stops,
                                   cancel):
        out[i].append(event)
    return out


def alone(m, prompt, settings, stops=()):
    return list(stream(m, TOK, prompt, settings, stops))


def assert_same_events(got, want):
    """Ids, texts and alternatives equal; probabilities equal up to float rounding."""
    assert [(e.index, e.id, e.text) for e in got] == [(e.index, e.id, e.text) for e in want]
    assert [[t[:2] for t in e.top] for e in got] == [[t[:2] for t in e.top] for e in want]
    for g, w in zip(got, want, strict=True):
        assert g.prob == pytest.approx(w.prob, abs=1e-4)


def test_greedy_rows_equal_each_model_alone_with_prompts_of_different_lengths():
    models = [model(0), model(1), model(2)]
    settings = [SampleSettings(temperature=0, max_tokens=n, n_alternatives=3) for n in (20, 9, 14)]
    got = columns(models, PROMPTS, settings)
    for i, m in enumerate(models):
        want = alone(m, PROMPTS[i], settings[i])
        assert len(want) == settings[i].max_tokens
        assert_same_events(got[i], want)
    # The rows really are different models (and partial UTF-8 was held back on the way).
    assert len({tuple(e.id for e in got[i][:9]) for i in got}) == 3
    assert any(e.text == "" or "\\x" in e.text for i in got for e in got[i])


def test_seeded_rows_equal_each_model_alone_each_with_its_own_settings():
    models = [model(0), model(1), model(2)]
    settings = [SampleSettings(temperature=1.0, top_k=50, max_tokens=16, seed=5),
                SampleSettings(temperature=0.7, top_k=None, top_p=0.9, max_tokens=16, seed=6),
                SampleSettings(temperature=1.0, top_k=50, max_tokens=16, seed=7)]
    got = columns(models, PROMPTS, settings)
    for i, m in enumerate(models):
        assert_same_events(got[i], alone(m, PROMPTS[i], settings[i]))
    # Same settings but another seed: another text (the seed really is per row).
    other = columns(models, PROMPTS, [*settings[:2],
                                      SampleSettings(temperature=1.0, top_k=50, max_tokens=16,
                                                     seed=8)])
    assert [e.id for e in other[2]] != [e.id for e in got[2]]
    assert [e.id for e in other[0]] == [e.id for e in got[0]]


def test_one_row_stops_early_and_the_others_go_on():
    models = [model(0), model(1), model(2)]
    settings = [SampleSettings(temperature=0, max_tokens=12)] * 3
    free = alone(models[1], PROMPTS[1], settings[1])
    stop = free[3].id  # row 1 meets this token at its fourth step
    stops = [[], [stop], []]
    got = columns(models, PROMPTS, settings, stops)
    want = alone(models[1], PROMPTS[1], settings[1], [stop])
    assert got[1][-1].id == stop and len(got[1]) <= 4
    assert_same_events(got[1], want)
    for i in (0, 2):
        assert_same_events(got[i], alone(models[i], PROMPTS[i], settings[i]))
        assert len(got[i]) == 12


def test_rows_end_at_the_end_of_their_own_context():
    models = [model(0, block=24), model(1, block=24)]
    # max_tokens past half the context: the prompts keep 12 tokens at most (fit_prompt), then
    # each row generates until its context is full, before max_tokens.
    prompts = [[256, *b"a much longer prompt"], PROMPTS[0]]
    settings = [SampleSettings(temperature=0, max_tokens=20)] * 2
    got = columns(models, prompts, settings)
    assert len(got[0]) == 24 - 12 and len(got[1]) == 24 - len(PROMPTS[0])
    for i, m in enumerate(models):
        assert_same_events(got[i], alone(m, prompts[i], settings[i]))


def test_the_same_model_twice_with_two_seeds():
    m = model(3)
    settings = [SampleSettings(temperature=1.0, max_tokens=12, seed=s) for s in (1, 2)]
    got = columns([m, m], [PROMPTS[0]] * 2, settings)
    assert [e.id for e in got[0]] != [e.id for e in got[1]]
    for i in (0, 1):
        assert_same_events(got[i], alone(m, PROMPTS[0], settings[i]))


def test_gpt2_architecture_rows_equal_each_model_alone():
    models = [model(0, arch="gpt2"), model(1, arch="gpt2")]
    settings = [SampleSettings(temperature=0, max_tokens=10)] * 2
    got = columns(models, PROMPTS[:2], settings)
    for i, m in enumerate(models):
        assert_same_events(got[i], alone(m, PROMPTS[i], settings[i]))


def test_cancel_stops_every_row():
    models = [model(0, block=512), model(1, block=512)]
    settings = [SampleSettings(temperature=1.0, max_tokens=400, seed=1)] * 2
    cancel = threading.Event()
    n = 0
    for _ in stream_stacked(models, [TOK] * 2, PROMPTS[:2], settings, [[], []], cancel):
        n += 1
        if n == 6:
            cancel.set()
    assert n < 10


def test_models_of_different_shapes_do_not_stack_and_empty_prompts_are_refused():
    a, b = model(0), model(1, block=32)
    assert stack_key(a) != stack_key(b) and stack_key(a) == stack_key(model(2))
    with pytest.raises(ValueError, match="same config"):
        StackedGPT([a, b])
    with pytest.raises(ValueError, match="empty prompt"):
        columns([a, model(2)], [PROMPTS[0], []], [SampleSettings()] * 2)
