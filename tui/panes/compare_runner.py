"""What the Compare pane's worker threads do: load a model, stream an answer, sample ×N, and
run K problems of one family through every column (family mode).

One thread per column, so the three columns decode at the same time (torch releases the GIL
inside its kernels). Each thread posts typed messages in batches (about 30 a second), never a
message per token, and every message carries the generation number it belongs to so the pane
can drop what a cancelled run still sends. Nothing here imports torch at module level.

Every ✓/✗ comes from ``engine.data.judge.judge`` (the same judge as the report card and the RL
reward), with its reason. Each column samples with a seed of its own, derived from the pane's
seed and the column's index (``column_seed``): SFT and RL no longer draw the same dice, and any
answer can be drawn again by typing the pane's seed back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from textual.message import Message

from tui.panes.compare_fewshot import fewshot_answer, fewshot_document

FLUSH_S = 1 / 30  # UI updates per column: ~30 a second is smooth and cheap


@dataclass
class CompareSettings:
    """One set of sampling settings shared by every column."""

    temperature: float = 0.8
    top_k: int | None = 50
    max_tokens: int = 96
    seed: int = 1  # the base seed: column i samples with column_seed(seed, i)
    n_samples: int = 8  # the "×N" of the pass-rate action
    family_k: int = 20  # problems per family in family mode

    def describe(self) -> str:
        top_k = "off" if self.top_k is None else self.top_k
        return (f"temp {self.temperature:g} · top-k {top_k} · max {self.max_tokens} tok · "
                f"seed {self.seed} · ×{self.n_samples}")

    def column_seed(self, index: int) -> int:
        return column_seed(self.seed, index)

    def sample_settings(self, seed: int | None = None, temperature: float | None = None,
                        max_tokens: int | None = None):
        """engine.model.sampler settings; ``seed`` defaults to the base seed (column 0's)."""
        from engine.api import SampleSettings

        return SampleSettings(temperature=self.temperature if temperature is None else temperature,
                              top_k=self.top_k,
                              max_tokens=self.max_tokens if max_tokens is None else max_tokens,
                              seed=self.seed if seed is None else seed, n_alternatives=1)


SEED_STRIDE = 1000


def column_seed(base: int, index: int) -> int:
    """Column ``index``'s seed: the base seed for the first column, then base + 1000·index, so
    columns never share dice and one base seed reproduces every column."""
    return base + SEED_STRIDE * index


@dataclass
class ColumnJob:
    """Everything one column needs to answer one prompt."""

    index: int
    gen: int
    run: str
    stage: str
    problem: object  # engine.data.tasks.Problem
    fewshot: list[tuple[str, str]] | None  # examples when the base model gets a few-shot document
    settings: CompareSettings
    cancel: threading.Event = field(default_factory=threading.Event)
    seed: int | None = None  # this column's seed (column_seed of the pane's seed and index)

    def __post_init__(self) -> None:
        if self.seed is None:
            self.seed = self.settings.column_seed(self.index)

    @property
    def is_fewshot(self) -> bool:
        return self.fewshot is not None

    def sample_settings(self, **overrides):
        return self.settings.sample_settings(seed=self.seed, **overrides)


class ColumnStatus(Message):
    def __init__(self, index: int, gen: int, status: str):
        super().__init__()
        self.index, self.gen, self.status = index, gen, status


class ColumnChunk(Message):
    def __init__(self, index: int, gen: int, chunk: str, n_tokens: int, elapsed_s: float):
        super().__init__()
        self.index, self.gen, self.chunk = index, gen, chunk
        self.n_tokens, self.elapsed_s = n_tokens, elapsed_s


class ColumnDone(Message):
    """A column's whole answer; ``pieces`` are its tokens' texts (for the divergence mark)."""

    def __init__(self, index: int, gen: int, text: str, n_tokens: int, elapsed_s: float,
                 verdict, stopped: bool, pieces: list[str] | None = None):
        super().__init__()
        self.index, self.gen, self.text, self.n_tokens = index, gen, text, n_tokens
        self.elapsed_s, self.verdict, self.stopped = elapsed_s, verdict, stopped  # judge Verdict
        self.pieces = pieces if pieces is not None else [text]


class ColumnPassRate(Message):
    def __init__(self, index: int, gen: int, samples: list[str], verdicts: list,
                 elapsed_s: float):
        super().__init__()
        self.index, self.gen, self.samples, self.verdicts = index, gen, samples, verdicts
        self.elapsed_s = elapsed_s

    @property
    def passed(self) -> int:
        return sum(1 for v in self.verdicts if v.correct)


class FamilyStep(Message):
    """One problem of family mode answered by one column (``i`` of ``total``)."""

    def __init__(self, index: int, gen: int, i: int, total: int, problem, text: str, verdict):
        super().__init__()
        self.index, self.gen, self.i, self.total = index, gen, i, total
        self.problem, self.text, self.verdict = problem, text, verdict


class ColumnError(Message):
    def __init__(self, index: int, gen: int, error: str):
        super().__init__()
        self.index, self.gen, self.error = index, gen, error


def load_model(client, job_index: int, gen: int, run: str, stage: str,
               post: Callable[[Message], object]) -> None:
    """Load (or find cached) one model, saying so while it happens."""
    post(ColumnStatus(job_index, gen, f"loading {stage}…"))
    meta = client.load(run, stage)
    step = meta.get("step", "?") if isinstance(meta, dict) else "?"
    post(ColumnStatus(job_index, gen, f"{run}/{stage} ready (step {step})"))


def prompt_ids(tok, job: ColumnJob) -> list[int]:
    """The chat-formatted prompt, or for a few-shot base column the Q/A document."""
    from engine.api import render_document, render_prompt

    if job.is_fewshot:
        return render_document(tok, fewshot_document(job.fewshot, user_text(job.problem)))
    return render_prompt(tok, job.problem.messages)


def user_text(problem) -> str:
    return next((m["content"] for m in reversed(problem.messages) if m["role"] == "user"), "")


def stop_ids(tok) -> list[int]:
    """The end of an assistant turn, and the start of the next document (a base model's end)."""
    ids = []
    for name in ("<|assistant_end|>", "<|bos|>"):
        try:
            ids.append(tok.special_id(name))
        except KeyError:
            pass  # an imported tokenizer without our chat tokens: stop on max_tokens alone
    return ids


def answer_of(job: ColumnJob, text: str) -> tuple[str, bool]:
    """What counts as the column's answer in `text`, and whether it is complete."""
    if job.is_fewshot:
        return fewshot_answer(text)
    return text, False


def verdict_of(problem, answer: str):
    """The one judge's Verdict (``correct`` None: nothing to check, shown as "—"), on the reply
    up to its first special token, as the report card reads it (engine/data/evals.py)."""
    import re

    from engine.api import SPECIAL_TOKENS, judge

    cut = re.search("|".join(map(re.escape, SPECIAL_TOKENS)), answer)
    return judge(problem, answer[: cut.start()] if cut else answer)


class _Column:
    """One column's answer while the columns stream together."""

    def __init__(self, job: ColumnJob, stops: list[int]):
        self.job, self.stops = job, stops
        self.text, self.pending, self.n, self.stopped, self.done = "", [], 0, False, False
        self.pieces: list[str] = []  # every token's text, in order
        self.t0 = self.last = 0.0  # set when the streaming starts, after every model loaded

    def add(self, event, post: Callable[[Message], object]) -> None:
        """Take one token; the column is done at its stop id or a complete few-shot answer."""
        job = self.job
        self.n += 1
        if event.id in self.stops:
            self.stopped = self.done = True
            return
        self.text += event.text
        self.pieces.append(event.text)
        self.pending.append(event.text)
        if job.is_fewshot and answer_of(job, self.text)[1]:
            self.stopped = self.done = True  # the model moved on to the next "Q:": complete
            return
        now = time.perf_counter()
        if now - self.last >= FLUSH_S:
            post(ColumnChunk(job.index, job.gen, "".join(self.pending), self.n, now - self.t0))
            self.pending.clear()
            self.last = now

    def finish(self, post: Callable[[Message], object]) -> None:
        self.done = True
        job = self.job
        answer = answer_of(job, self.text)[0]
        post(ColumnDone(job.index, job.gen, answer, self.n, time.perf_counter() - self.t0,
                        verdict_of(job.problem, answer), self.stopped,
                        answer_pieces(self.pieces, answer)))


def answer_pieces(pieces: list[str], answer: str) -> list[str]:
    """The token texts that make up ``answer`` (a few-shot answer is a stripped prefix of the
    text): leading whitespace and anything past the answer dropped, so "".join gives answer."""
    out, pos = [], 0
    text = "".join(pieces)
    start = text.find(answer) if answer else 0
    start = max(start, 0)
    end = start + len(answer)
    for p in pieces:
        a, b = max(pos, start), min(pos + len(p), end)
        if b > a:
            out.append(text[a:b])
        pos += len(p)
    return out


def stream_columns(client, jobs: list[ColumnJob], post: Callable[[Message], object]) -> None:
    """Stream every column's answer together: client.stream_many decodes the columns whose
    models share a shape (base, SFT, RL of one run) as one batch. The jobs share one cancel
    event. Each column posts batched chunks and one ColumnDone (or a ColumnError)."""
    from engine.api import StreamRequest

    columns, requests = [], []
    for job in jobs:
        try:
            load_model(client, job.index, job.gen, job.run, job.stage, post)
            tok = client.tokenizer(job.run)
            stops = stop_ids(tok)
            requests.append(StreamRequest(job.run, job.stage, prompt_ids(tok, job),
                                          job.sample_settings(), stops))
            columns.append(_Column(job, stops))
            post(ColumnStatus(job.index, job.gen, "thinking…"))
        except Exception as e:  # a broken checkpoint must not take the pane down
            post(ColumnError(job.index, job.gen, f"{type(e).__name__}: {e}"))
    if not columns:
        return
    cancel = jobs[0].cancel
    for c in columns:
        c.t0 = c.last = time.perf_counter()
    for i, item in client.stream_many(requests, cancel):
        column = columns[i]
        if isinstance(item, Exception):
            column.done = True
            post(ColumnError(column.job.index, column.job.gen,
                             f"{type(item).__name__}: {item}"))
        elif not column.done:  # a finished few-shot column's later tokens are dropped
            column.add(item, post)
            if column.done:
                column.finish(post)
    if cancel.is_set():
        return
    for column in columns:
        if not column.done:
            column.finish(post)


def sample_column(client, job: ColumnJob, post: Callable[[Message], object]) -> None:
    """Sample N answers at once (one batch) and post their verdicts."""
    try:
        load_model(client, job.index, job.gen, job.run, job.stage, post)
        tok = client.tokenizer(job.run)
        ids, stops = prompt_ids(tok, job), stop_ids(tok)
        n = job.settings.n_samples
        post(ColumnStatus(job.index, job.gen, f"sampling ×{n}…"))
        t0 = time.perf_counter()
        rows = client.generate_batch(job.run, job.stage, [ids] * n, job.sample_settings(), stops)
        if job.cancel.is_set():
            return
        samples = [answer_of(job, tok.decode([i for i in row if i not in stops]))[0]
                   for row in rows]
        verdicts = [verdict_of(job.problem, s) for s in samples]
        post(ColumnPassRate(job.index, job.gen, samples, verdicts, time.perf_counter() - t0))
    except Exception as e:
        post(ColumnError(job.index, job.gen, f"{type(e).__name__}: {e}"))


# -- family mode --------------------------------------------------------------------------------

# The families a presenter can run through every column: (family, what the pane calls it)
FAMILY_MODES = (("arith", "sums"), ("fact_heldout", "held-out facts"),
                ("unknown", "unknown people"), ("count_letters", "letter counts"),
                ("decimal_cmp", "decimals"))
FAMILY_LABELS = dict(FAMILY_MODES)


def family_budget(client, run: str, stage: str, world, family: str) -> int:
    """The report card's token budget for the family (engine.data.evals.token_budgets)."""
    from engine.api import token_budgets

    block = client.model(run, stage).config.block_size
    return token_budgets(client.tokenizer(run), world, block).get(family, block // 2)


def run_family(client, jobs: list[ColumnJob], problems: list, world, family: str,
               post: Callable[[Message], object]) -> None:
    """Each problem through every column (stacked where the models share a shape), decoded as
    the report card decodes (greedy, its token budget); one FamilyStep per problem and column."""
    from dataclasses import replace

    from engine.api import StreamRequest

    ready: list[ColumnJob] = []
    for job in jobs:
        try:
            load_model(client, job.index, job.gen, job.run, job.stage, post)
            ready.append(job)
        except Exception as e:
            post(ColumnError(job.index, job.gen, f"{type(e).__name__}: {e}"))
    if not ready:
        return
    cancel = ready[0].cancel
    try:
        budget = family_budget(client, ready[0].run, ready[0].stage, world, family)
    except Exception:  # noqa: BLE001 - a budget is a convenience; the pane's own max will do
        budget = ready[0].settings.max_tokens
    for i, problem in enumerate(problems):
        columns, requests = [], []
        for job in ready:
            j = replace(job, problem=problem)
            tok = client.tokenizer(j.run)
            stops = stop_ids(tok)
            requests.append(StreamRequest(j.run, j.stage, prompt_ids(tok, j),
                                          j.sample_settings(temperature=0.0, max_tokens=budget),
                                          stops))
            columns.append(_Column(j, stops))
        failed: dict[int, Exception] = {}
        for k, item in client.stream_many(requests, cancel):
            if isinstance(item, Exception):
                failed[k] = item
                columns[k].done = True
            elif not columns[k].done:
                columns[k].add(item, lambda _m: None)
        if cancel.is_set():
            return
        for k, column in enumerate(columns):
            job = column.job
            if k in failed:
                post(ColumnError(job.index, job.gen, f"{type(failed[k]).__name__}: {failed[k]}"))
                continue
            answer = answer_of(job, column.text)[0]
            post(FamilyStep(job.index, job.gen, i, len(problems), problem, answer,
                            verdict_of(problem, answer)))
