"""What the Sample pane's worker thread does: load the model, stream tokens, post them in batches.

The thread posts typed messages (never one per token while running free: ~30 batches a
second), each carrying the generation number it belongs to, so the pane drops what a cancelled
or replaced run still sends. In step mode it waits for a permit before each token, posts the
distribution first and the drawn token a moment later. Nothing here imports torch at module
level.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from textual.message import Message

FLUSH_S = 1 / 30  # UI updates a second while running free
N_ALTERNATIVES = 10  # bars in the distribution panel


@dataclass
class Knobs:
    """The pane's sampling inputs, parsed."""

    temperature: float = 0.8
    top_k: int | None = 50
    top_p: float | None = None
    max_tokens: int = 128
    seed: int | None = 1

    def sample_settings(self):
        from engine.api import SampleSettings

        return SampleSettings(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                              max_tokens=self.max_tokens, seed=self.seed,
                              n_alternatives=N_ALTERNATIVES)

    def describe(self) -> str:
        seed = "random" if self.seed is None else self.seed
        return (f"temp {self.temperature:g} · top-k {self.top_k or 'off'} · "
                f"top-p {self.top_p or 'off'} · seed {seed}")


def parse_knobs(temperature: str, top_k: str, top_p: str, max_tokens: str, seed: str) -> Knobs:
    """Knobs from the input boxes; ValueError with a message a person can act on."""

    def number(text: str, kind, what: str):
        try:
            return kind(text.strip())
        except ValueError:
            raise ValueError(f"{what}: {text.strip()!r} is not a number") from None

    t = number(temperature or "0.8", float, "temperature")
    if not 0 <= t <= 10:
        raise ValueError("temperature: use 0 (greedy) to 10")
    k = number(top_k, int, "top-k") if top_k.strip() else None
    if k is not None and k < 0:
        raise ValueError("top-k: use a positive count, or 0/empty for off")
    p = number(top_p, float, "top-p") if top_p.strip() else None
    if p is not None and not 0 < p <= 1:
        raise ValueError("top-p: use a probability in (0, 1], or empty for off")
    m = number(max_tokens or "128", int, "max tokens")
    if not 1 <= m <= 100_000:
        raise ValueError("max tokens: use 1 to 100000")
    s = number(seed, int, "seed") if seed.strip() else None
    return Knobs(t, k or None, None if p in (None, 1.0) else p, m, s)


@dataclass
class SampleJob:
    gen: int  # generation number: messages of older generations are dropped
    run: str
    stage: str
    text: str
    chat: bool
    knobs: Knobs
    step: bool = False  # one token per permit
    # chat mode: the earlier turns of the conversation (user, assistant, ...); the new user
    # message is ``text``. Rendered with engine.tokens.chat.render_prompt, as training renders it.
    history: list[dict] = field(default_factory=list)
    reveal_s: float = 0.35  # step mode: how long the dice roll before the drawn token shows
    cancel: threading.Event = field(default_factory=threading.Event)
    free_run: threading.Event = field(default_factory=threading.Event)  # leave step mode
    permits: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def stepping(self) -> bool:
        return self.step and not self.free_run.is_set()

    def wait_permit(self) -> bool:
        """Block until a step key press (True), or cancel (False)."""
        while not self.cancel.is_set():
            if self.free_run.is_set() or self.permits.acquire(timeout=0.05):
                return True
        return False


class SampleStatus(Message):
    def __init__(self, gen: int, text: str):
        super().__init__()
        self.gen, self.text = gen, text


class SampleStarted(Message):
    """The model is loaded and the prompt fits: ``context`` is what the model sees, ``tokens``
    the same as (id, text) per token (text "" where a character continues in the next one)."""

    def __init__(self, gen: int, context: str, n_prompt: int, dropped: int, block_size: int,
                 meta: dict, tokens: list[tuple[int, str]] | None = None,
                 specials: frozenset[int] = frozenset()):
        super().__init__()
        self.gen, self.context, self.n_prompt = gen, context, n_prompt
        self.dropped, self.block_size, self.meta = dropped, block_size, meta
        self.tokens = tokens or []
        self.specials = specials  # ids of the tokenizer's special tokens (drawn apart)


class SampleTokens(Message):
    """A batch of TokenEvents, in order."""

    def __init__(self, gen: int, events: list, elapsed: float):
        super().__init__()
        self.gen, self.events, self.elapsed = gen, events, elapsed


class SamplePending(Message):
    """Step mode: the distribution of the next token, before the drawn token is revealed."""

    def __init__(self, gen: int, event):
        super().__init__()
        self.gen, self.event = gen, event


class SampleDone(Message):
    """``reply``: the generated text without its stop token (a chat turn's content)."""

    def __init__(self, gen: int, n: int, elapsed: float, reason: str, reply: str = ""):
        super().__init__()
        self.gen, self.n, self.elapsed, self.reason = gen, n, elapsed, reason
        self.reply = reply


class SampleFailed(Message):
    def __init__(self, gen: int, error: str):
        super().__init__()
        self.gen, self.error = gen, error


def run_job(client, job: SampleJob, post: Callable[[Message], object]) -> None:
    """Everything one generation does, in the worker thread; errors become SampleFailed."""
    try:
        from engine.api import fit_prompt

        post(SampleStatus(job.gen, f"loading {job.run}/{job.stage}…"))
        meta = client.load(job.run, job.stage)
        tok = client.tokenizer(job.run)
        ids, stops = prompt_ids(tok, job)
        settings = job.knobs.sample_settings()
        block = int(meta["config"]["block_size"])
        kept, dropped = fit_prompt(ids, block, settings.max_tokens)
        post(SampleStarted(job.gen, tok.decode(kept), len(ids), dropped, block, meta,
                           token_texts(tok, kept), frozenset(tok.specials.values())))
        events = client.stream(job.run, job.stage, kept, settings, stops, job.cancel)
        n, new_ids, elapsed = _drive(job, events, post)
        last_id = new_ids[-1] if new_ids else None
        reply = tok.decode([i for i in new_ids if i not in stops])
    except Exception as e:  # a broken checkpoint or bad input must not take the app down
        post(SampleFailed(job.gen, f"{type(e).__name__}: {e}"))
        return
    if job.cancel.is_set():
        reason = "cancelled"
    elif last_id is not None and last_id in stops:
        reason = "stop"
    elif n >= settings.max_tokens:
        reason = "max"
    else:
        reason = "context"
    post(SampleDone(job.gen, n, elapsed, reason, reply))


def prompt_ids(tok, job: SampleJob) -> tuple[list[int], list[int]]:
    """(prompt ids, stop ids): a raw document, or the conversation so far plus the new user
    message in the chat format training uses (engine.tokens.chat.render_prompt)."""
    from engine.api import has_chat_format, prepare_prompt, render_prompt

    if not (job.chat and job.history):
        return prepare_prompt(tok, job.text, chat=job.chat)
    if has_chat_format(tok) != "deepdive":
        raise ValueError("this model's tokenizer has no chat tokens: sample it as a raw document")
    messages = [*job.history, {"role": "user", "content": job.text}]
    return render_prompt(tok, messages), [tok.special_id("<|assistant_end|>")]


def token_texts(tok, ids: list[int]) -> list[tuple[int, str]]:
    """(id, text) per token, as the stream shows sampled ones: a character split over tokens
    comes whole with its last token (the ones before it get ""), broken bytes as \\xNN."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
    out = [(i, decoder.decode(tok.token_bytes(i))) for i in ids]
    tail = decoder.decode(b"", final=True)
    if tail and out:
        out[-1] = (out[-1][0], out[-1][1] + tail)
    return out


def _drive(job: SampleJob, events, post) -> tuple[int, list[int], float]:
    """Pull tokens from the sampler, posting them in batches (or one by one in step mode).
    Returns (tokens, their ids, seconds spent sampling)."""
    it = iter(events)
    pending: list = []
    n, ids = 0, []
    t0 = last_flush = time.perf_counter()
    waited = 0.0  # time spent waiting for key presses / reveals: not sampling time
    while True:
        if job.stepping():
            w0 = time.perf_counter()
            if not job.wait_permit():
                break
            waited += time.perf_counter() - w0
        event = next(it, None)
        if event is None:
            break
        n = n + 1
        ids.append(event.id)
        if job.stepping():
            post(SamplePending(job.gen, event))
            w0 = time.perf_counter()
            job.cancel.wait(job.reveal_s)  # the dice roll; a cancel cuts it short
            waited += time.perf_counter() - w0
            post(SampleTokens(job.gen, [event], time.perf_counter() - t0 - waited))
            continue
        pending.append(event)
        now = time.perf_counter()
        if now - last_flush >= FLUSH_S:
            post(SampleTokens(job.gen, pending, now - t0 - waited))
            pending, last_flush = [], now
    elapsed = time.perf_counter() - t0 - waited
    if pending:
        post(SampleTokens(job.gen, pending, elapsed))
    return n, ids, elapsed
