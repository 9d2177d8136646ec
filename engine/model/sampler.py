"""Sampling: turn a model's next-token distribution into text, one token at a time.

Each step the model gives logits over the vocabulary; we reshape that distribution
(temperature, then top-k, then top-p), draw one token, and feed it back. A KV cache makes each
step cost one position's work: the prompt is processed once ("prefill"), then one token per step.

``stream`` yields a ``TokenEvent`` per token for the UI (text, probability, alternatives);
``generate_batch`` decodes many prompts at once for RL and the Compare pane.
"""

from __future__ import annotations

import codecs
import operator
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class SampleSettings:
    temperature: float = 0.8  # 0 = greedy (always the most likely token)
    top_k: int | None = 50  # keep only the k most likely tokens
    top_p: float | None = None  # keep the smallest set of tokens whose mass reaches p
    max_tokens: int = 128
    seed: int | None = None  # same seed, same model, same prompt -> same text
    n_alternatives: int = 5  # how many of the most likely tokens each TokenEvent reports


@dataclass
class TokenEvent:
    index: int  # 0 for the first generated token
    id: int
    text: str  # whole characters only: bytes of an unfinished UTF-8 character are held back
    prob: float  # and emitted with the token that completes it
    # (id, text, prob) of the likeliest tokens at this step, likeliest first
    top: list[tuple[int, str, float]] = field(default_factory=list)
    # the model's own probability (softmax at T=1, no top-k/top-p) of the drawn token and of
    # each alternative in ``top``, by id: what the knobs reshaped. Empty when not reported.
    raw: dict[int, float] = field(default_factory=dict)


def fit_prompt(prompt_ids: Sequence[int], block_size: int,
               max_tokens: int) -> tuple[list[int], int]:
    """Keep the end of a prompt so that it and ``max_tokens`` new tokens fit the context.

    The prompt always keeps at least half the context (generation then stops at the context's
    end rather than the prompt shrinking to nothing). Returns (kept ids, how many were dropped).
    """
    room = max(block_size - max_tokens, block_size // 2, 1)
    ids = list(prompt_ids)
    dropped = max(len(ids) - room, 0)
    return ids[dropped:], dropped


def check_prompt(ids: Sequence[int], vocab_size: int) -> None:
    """ValueError unless ``ids`` is a non-empty sequence of whole numbers in ``0..vocab_size-1``.

    An id outside the vocabulary (a tokenizer that does not match the model, a hand-made
    prompt) would otherwise fail deep inside the embedding: an IndexError on the CPU, and on
    CUDA a device-side assert that breaks every later call in the process.
    """
    if len(ids) == 0:  # len, not truth: an array of ids has no single truth value
        raise ValueError("empty prompt: give at least one token (e.g. <|bos|>)")
    bad = [i for i in ids if not _is_token_id(i, vocab_size)]
    if bad:
        raise ValueError(f"prompt has {len(bad)} token id(s) outside the model's vocabulary "
                         f"(0..{vocab_size - 1}): {bad[:5]!r}; does the tokenizer match the model?")


def _is_token_id(i: object, vocab_size: int) -> bool:
    try:
        return 0 <= operator.index(i) < vocab_size  # ints, numpy ints; not floats or strings
    except TypeError:
        return False


def sampling_probs(logits: Tensor, settings: SampleSettings) -> Tensor:
    """The distribution a token is drawn from, (B, V) logits -> (B, V) probabilities.

    Temperature 0 means greedy; its distribution is the model's own softmax (what we report),
    and the caller takes the argmax.
    """
    logits = logits.float()
    if settings.temperature > 0:
        logits = logits / settings.temperature
    else:
        return torch.softmax(logits, dim=-1)
    if settings.top_k is not None and 0 < settings.top_k < logits.size(-1):
        keep = torch.topk(logits, settings.top_k, dim=-1).indices
        masked = torch.full_like(logits, float("-inf"))
        logits = masked.scatter(-1, keep, logits.gather(-1, keep))  # exactly k survive, ties too
    probs = torch.softmax(logits, dim=-1)
    if settings.top_p is not None and settings.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        # Keep a token while the mass of the likelier ones is still short of p (the first always).
        sorted_probs = sorted_probs.masked_fill(mass_before >= settings.top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def draw(probs: Tensor, settings: SampleSettings, generator: torch.Generator | None) -> Tensor:
    """One token id per row, (B, V) -> (B,)."""
    if settings.temperature <= 0:
        return probs.argmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def make_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    if seed is None:
        return None  # torch's global generator: different text each run
    return torch.Generator(device=device).manual_seed(seed)


def token_text(tok, token_id: int) -> str:
    """One token on its own, for lists of alternatives: partial UTF-8 shows as \\xNN escapes."""
    return tok.token_bytes(token_id).decode("utf-8", errors="backslashreplace")


def _device(model) -> torch.device:
    return next(model.parameters()).device


def stream(model, tok, prompt_ids: Sequence[int], settings: SampleSettings,
           stop_ids: Iterable[int] = (),
           cancel: threading.Event | None = None) -> Iterator[TokenEvent]:
    """Yield one TokenEvent per sampled token until a stop id (yielded last), ``max_tokens``,
    the end of the context, or ``cancel`` is set. The prompt is left-truncated by ``fit_prompt``
    (call it yourself first to tell the user). An empty prompt or an id outside the model's
    vocabulary is a ValueError (``check_prompt``), raised before any work."""
    block = model.config.block_size
    check_prompt(prompt_ids, model.config.vocab_size)
    ids, _ = fit_prompt(prompt_ids, block, settings.max_tokens)
    stops = set(stop_ids)
    device = _device(model)
    generator = make_generator(settings.seed, device)
    # Bytes of a character split across tokens wait here; invalid bytes come out as \xNN.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            cache = model.new_cache(batch=1, max_len=block)
            logits, _ = model(torch.tensor([ids], device=device), cache=cache, last_only=True)
            for index in range(settings.max_tokens):
                if cancel is not None and cancel.is_set():
                    return
                probs = sampling_probs(logits[:, -1], settings)
                token = int(draw(probs, settings, generator))
                last = (token in stops or index + 1 == settings.max_tokens
                        or len(ids) + index + 1 >= block
                        or (cancel is not None and cancel.is_set()))
                text = decoder.decode(tok.token_bytes(token), final=last)
                top = _alternatives(tok, probs[0], settings.n_alternatives)
                yield TokenEvent(index, token, text, float(probs[0, token]), top,
                                 _raw(logits[0, -1], probs[0], settings, token, top))
                if last:
                    return
                logits, _ = model(torch.tensor([[token]], device=device), cache=cache)
    finally:
        model.train(was_training)


def _raw(logits: Tensor, probs: Tensor, settings: SampleSettings, token: int,
         top: list[tuple[int, str, float]]) -> dict[int, float]:
    """The T=1 probabilities of the drawn token and the alternatives (empty when none are
    reported); the sampling distribution itself when the knobs leave it untouched."""
    if settings.n_alternatives <= 0:
        return {}
    untouched = (settings.temperature == 1.0 and not settings.top_k
                 and (settings.top_p is None or settings.top_p >= 1.0))
    raw = probs if untouched else torch.softmax(logits.float(), dim=-1)
    ids = [token, *(i for i, _, _ in top)]
    return dict(zip(ids, raw[ids].tolist(), strict=True))


def _alternatives(tok, probs: Tensor, n: int) -> list[tuple[int, str, float]]:
    if n <= 0:
        return []
    values, indices = torch.topk(probs, min(n, probs.numel()))
    pairs = zip(indices.tolist(), values.tolist(), strict=True)
    return [(i, token_text(tok, i), p) for i, p in pairs]


def generate_batch(model, prompts: list[list[int]], settings: SampleSettings,
                   stop_ids: Iterable[int] = ()) -> list[list[int]]:
    """One continuation per prompt, decoded together; returns the new ids of each row,
    cut after its first stop id (the stop id included).

    Prompts of different lengths are left-padded into one batch; the KV cache knows each row's
    padding, so padding is never attended to and positions start after it: every row computes
    what it would alone (a test checks greedy rows equal ``stream``). A bad prompt is a
    ValueError, as in ``stream``.
    """
    if not prompts:
        return []
    block = model.config.block_size
    for p in prompts:
        check_prompt(p, model.config.vocab_size)
    rows = [fit_prompt(p, block, settings.max_tokens)[0] for p in prompts]
    stops = torch.tensor(sorted(set(stop_ids)), dtype=torch.long)
    device = _device(model)
    B, width = len(rows), max(len(r) for r in rows)
    # Each row may generate up to max_tokens, but never past the end of its own context.
    budget = torch.tensor([min(settings.max_tokens, block - len(r)) for r in rows], device=device)
    steps = int(budget.max())
    if steps <= 0:
        return [[] for _ in rows]
    pad = [width - len(r) for r in rows]
    idx = torch.tensor([[0] * p + r for p, r in zip(pad, rows, strict=True)], device=device)
    generator = make_generator(settings.seed, device)
    out = torch.zeros(B, steps, dtype=torch.long, device=device)
    done = budget <= 0
    n_new = torch.zeros(B, dtype=torch.long, device=device)
    stops = stops.to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            cache = model.new_cache(batch=B, max_len=width + steps, pad=pad)
            logits, _ = model(idx, cache=cache, last_only=True)
            for step in range(steps):
                last = logits[:, -1]
                if settings.temperature <= 0:
                    token = last.argmax(dim=-1)  # greedy needs no probabilities
                else:
                    token = draw(sampling_probs(last, settings), settings, generator)
                out[:, step] = token
                n_new += ~done
                done = done | (n_new >= budget)
                if len(stops):
                    done = done | torch.isin(token, stops)
                if step + 1 == steps or bool(done.all()):
                    break
                logits, _ = model(token[:, None], cache=cache)
    finally:
        model.train(was_training)
    return [out[b, : int(n_new[b])].tolist() for b in range(B)]


def prepare_prompt(tok, text: str, chat: bool = False) -> tuple[list[int], list[int]]:
    """(prompt ids, stop ids) for a user's text, as the CLI and the Sample pane both need.

    chat: a one-turn conversation ready for the assistant's reply; stops at <|assistant_end|>.
    raw: a document that starts at <|bos|> (GPT-2: <|endoftext|>) and stops at the next one.
    User text is always encoded as ordinary text, never as special tokens.
    """
    from engine.tokens.chat import has_chat_format, render_document, render_prompt

    if chat:
        if has_chat_format(tok) != "deepdive":
            raise ValueError("this model's tokenizer has no chat tokens (<|user_start|> ...): "
                             "sample it as a raw document, without chat mode")
        ids = render_prompt(tok, [{"role": "user", "content": text}])
        return ids, [tok.special_id("<|assistant_end|>")]
    if "<|bos|>" in tok.specials:
        return render_document(tok, text), [tok.special_id("<|bos|>")]
    if "<|endoftext|>" in tok.specials:  # GPT-2's document separator
        eot = tok.special_id("<|endoftext|>")
        return [eot, *tok.encode(text)], [eot]
    return tok.encode(text), []
