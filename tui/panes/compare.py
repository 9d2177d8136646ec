"""The Compare pane: one prompt, three models (base, SFT, RL by default) answering side by side.

The prompt comes from the box or from curated prompts of the run's world (a known fact, a fact
held out of SFT, a person who does not exist, arithmetic, letter counting, 9.11 vs 9.9, "who are
you?"). Each column streams from its own worker thread; where the prompt has a checkable answer
each column gets ✓/✗ from the world's verifier, and "×N" samples N answers per column to show a
pass rate instead of an anecdote. Models load in the background on first view.
"""

from __future__ import annotations

import random
import threading
from functools import partial

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Resize, Show
from textual.message import Message
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from tui.panes.compare_column import CompareColumn, column_key, split_key
from tui.panes.compare_runner import (
    ColumnChunk,
    ColumnDone,
    ColumnError,
    ColumnJob,
    ColumnPassRate,
    ColumnStatus,
    CompareSettings,
    load_model,
    sample_column,
    stream_columns,
    user_text,
)

DEFAULT_STAGES = ("base", "sft", "rl")
NARROW = 72  # below this width the columns stack (and scroll) instead of sitting side by side


class PromptsReady(Message):
    """The run's world is built: its curated prompts and few-shot examples."""

    def __init__(self, run: str, problems: list, examples: list[tuple[str, str]], error: str = ""):
        super().__init__()
        self.run, self.problems, self.examples, self.error = run, problems, examples, error


def default_run(preferred: str | None) -> tuple[str | None, list[str]]:
    """The run to compare (preferred, else "tiny", else the first with a model) and every
    run/stage choice on disk."""
    from engine.runs import STAGES, checkpoints_root, list_runs, resolve_run

    runs = list_runs()
    choices = [column_key(r.name, s) for r in runs for s in r.stages]
    if preferred:
        path = resolve_run(preferred)
        if path.parent != checkpoints_root():  # a run given by path: offer its stages too
            choices += [column_key(preferred, s) for s in STAGES
                        if (path / s / "model.safetensors").is_file()]
        return preferred, choices
    names = [r.name for r in runs if r.stages]
    if "tiny" in names:
        return "tiny", choices
    return (names[0] if names else None), choices


class ComparePane(Vertical):
    """Prompt box, curated prompts, shared settings, and three model columns."""

    DEFAULT_CSS = """
    ComparePane { height: 1fr; }
    ComparePane #compare-settings { height: 1; padding: 0 1; background: $boost; }
    ComparePane #compare-prompt { margin: 0 1; }
    ComparePane #compare-curated {
        height: auto; max-height: 7; margin: 0 1; border: none; padding: 0;
        background: $surface;
    }
    ComparePane.-short #compare-curated { max-height: 4; }
    ComparePane #compare-columns { height: 1fr; min-height: 8; }
    ComparePane.-narrow #compare-columns { layout: vertical; overflow-y: auto; }
    ComparePane.-narrow CompareColumn { height: 10; min-width: 0; }
    """

    BINDINGS = [
        Binding("ctrl+r", "run", "Run"),
        Binding("ctrl+n", "reroll", "Re-roll"),
        Binding("ctrl+g", "sample_n", "×N pass rate"),
        Binding("ctrl+o", "toggle_fewshot", "Few-shot base"),
    ]

    def __init__(self, *args, client=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._client = client  # a tui.client.ModelClient; the app-wide one if not given
        self.settings = CompareSettings()
        self.fewshot = False
        self.run_name: str | None = None
        self.problems: list = []  # engine.tasks.Problem, the curated prompts
        self.examples: list[tuple[str, str]] = []  # few-shot (question, answer) pairs
        self.problem = None  # the Problem of the prompt box (curated, or the user's own)
        self.gen = 0  # generation number: messages of older runs are dropped
        self.jobs: list[ColumnJob] = []
        self._started = False

    @property
    def client(self):
        if self._client is None:
            from tui.client import shared_client

            self._client = shared_client()
        return self._client

    def compose(self) -> ComposeResult:
        preferred = getattr(self.app, "run_name", None)
        self.run_name, choices = default_run(preferred)
        yield Static(self._settings_line(), id="compare-settings")
        yield Input(placeholder="Ask the three models… (Enter runs; or pick a prompt below)",
                    compact=True, id="compare-prompt")
        yield OptionList(Option("loading the run's world…", disabled=True), id="compare-curated")
        with Horizontal(id="compare-columns"):
            for i, stage in enumerate(DEFAULT_STAGES):
                key = column_key(self.run_name, stage) if self.run_name else None
                yield CompareColumn(i, choices, key, id=f"column-{i}")

    # --- start-up: build the world and load models once the pane is first seen -------------

    def on_show(self, event: Show) -> None:
        if self._started:
            return
        self._started = True
        self.call_after_refresh(self.query_one("#compare-prompt", Input).focus)
        if self.run_name is None:
            self._say_no_run()
            return
        # The first frame is already painted when Show arrives; queue the heavy start (world,
        # torch, three models) behind the app's pending messages so nothing else waits on it.
        self.app.call_later(self._start_loading)

    def _start_loading(self) -> None:
        self._prepare(self.run_name)
        for column in self.columns:
            self._load(column)

    def _say_no_run(self) -> None:
        options = self.query_one("#compare-curated", OptionList)
        options.clear_options()
        options.add_option(Option("no trained run yet: `deepdive demo` trains the tiny one, "
                                  "or `deepdive train --preset tiny --run tiny`", disabled=True))
        for column in self.columns:
            column.set_status("no model")

    @property
    def columns(self) -> list[CompareColumn]:
        return list(self.query(CompareColumn))

    @work(thread=True, exclusive=True, group="compare-prepare", exit_on_error=False)
    def _prepare(self, run: str) -> None:
        """World of the run's seed -> curated prompts and few-shot examples (a worker thread)."""
        from engine.runs import read_json, resolve_run
        from engine.tasks import curated_prompts
        from engine.world import build_world
        from tui.panes.compare_fewshot import fewshot_examples

        try:
            info = read_json(resolve_run(run) / "run.json")
            world = build_world(int(info.get("seed", 0)))
            self.post_message(PromptsReady(run, curated_prompts(world), fewshot_examples(world)))
        except Exception as e:  # missing run.json, a world the code no longer builds, …
            self.post_message(PromptsReady(run, [], [], f"{type(e).__name__}: {e}"))

    def on_prompts_ready(self, message: PromptsReady) -> None:
        self.problems, self.examples = message.problems, message.examples
        options = self.query_one("#compare-curated", OptionList)
        options.clear_options()
        if message.error:
            options.add_option(Option(f"no curated prompts: {message.error}", disabled=True))
            self.notify(f"could not build the world of {message.run}: {message.error}",
                        severity="error")
            return
        options.add_options(  # Text, not markup: a prompt may hold "[" of its own
            Option(Text.assemble((p.family, "bold"), "  ", user_text(p)), id=str(i))
            for i, p in enumerate(self.problems)
        )
        options.highlighted = 0
        if self.app.focused is None:  # keys must reach the pane's bindings
            self.query_one("#compare-prompt", Input).focus()

    def _load(self, column: CompareColumn) -> None:
        key = column.key
        if key is None:
            column.set_status("pick a run/stage above")
            return
        run, stage = split_key(key)
        self.run_worker(partial(self._load_quietly, column.index, self.gen, run, stage),
                        thread=True, group=f"column-{column.index}", exit_on_error=False)

    def _load_quietly(self, index: int, gen: int, run: str, stage: str) -> None:
        """Load a column's model ahead of the first prompt (a worker thread)."""
        try:
            load_model(self.client, index, gen, run, stage, self.post_message)
        except Exception as e:
            self.post_message(ColumnError(index, gen, f"{type(e).__name__}: {e}"))

    # --- the prompt --------------------------------------------------------------------------

    @on(OptionList.OptionSelected, "#compare-curated")
    def _pick_curated(self, event: OptionList.OptionSelected) -> None:
        problem = self.problems[int(event.option.id)]
        self.problem = problem
        self.query_one("#compare-prompt", Input).value = user_text(problem)
        self.action_run()

    @on(Input.Submitted, "#compare-prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        self.action_run()

    def current_problem(self):
        """The curated Problem if the box still holds its text, else the user's own prompt."""
        text = self.query_one("#compare-prompt", Input).value.strip()
        if not text:
            return None
        if self.problem is not None and user_text(self.problem).strip() == text:
            return self.problem
        for p in self.problems:
            if user_text(p).strip() == text:
                return p
        from engine.tasks import Problem

        return Problem(family="custom", messages=[{"role": "user", "content": text}], answer="")

    @on(CompareColumn.Picked)
    def _picked(self, event: CompareColumn.Picked) -> None:
        if self._started:  # a Select's first value arrives at mount: on_show loads those
            self._load(event.column)

    # --- actions -----------------------------------------------------------------------------

    def _new_jobs(self) -> list[ColumnJob] | None:
        problem = self.current_problem()
        if problem is None:
            self.notify("Type a prompt or pick one of the curated prompts first.",
                        severity="warning")
            return None
        for job in self.jobs:
            job.cancel.set()  # older threads stop at their next token
        self.gen += 1
        self.problem = problem
        self.jobs = []
        cancel = threading.Event()  # one per run: its columns stream (and stop) together
        for column in self.columns:
            if column.key is None:
                continue
            run, stage = split_key(column.key)
            fewshot = self.examples if (self.fewshot and stage == "base") else None
            self.jobs.append(ColumnJob(column.index, self.gen, run, stage, problem, fewshot,
                                       self.settings, cancel))
        return self.jobs

    def _begin(self, note: str) -> list[ColumnJob]:
        """New jobs for the filled columns, each column cleared and showing ``note``."""
        jobs = self._new_jobs() or []
        for job in jobs:
            column = self.columns[job.index]
            column.begin(("few-shot document · " if job.is_fewshot else "") + note)
        return jobs

    def action_run(self) -> None:
        """Stream one answer per column, all at the same time (one batch where models share
        a shape)."""
        jobs = self._begin("starting…")
        if jobs:
            self.run_worker(partial(stream_columns, self.client, jobs, self.post_message),
                            thread=True, group="columns", exit_on_error=False)

    def action_reroll(self) -> None:
        """A new seed for every column, then run again."""
        self.settings.seed = random.randrange(1, 100_000)
        self._refresh_settings()
        self.action_run()

    def action_sample_n(self) -> None:
        """Sample N answers per column and show each column's pass rate."""
        for job in self._begin(f"sampling ×{self.settings.n_samples}…"):
            self.run_worker(partial(sample_column, self.client, job, self.post_message),
                            thread=True, group=f"column-{job.index}", exit_on_error=False)

    def action_toggle_fewshot(self) -> None:
        """The base column answers a few-shot Q/A document instead of the chat prompt."""
        self.fewshot = not self.fewshot
        self._refresh_settings()
        state = "a few-shot Q/A document" if self.fewshot else "the chat-formatted prompt (raw)"
        self.notify(f"base column now continues {state}")

    def _settings_line(self) -> str:
        base = "few-shot doc" if self.fewshot else "raw chat prompt"
        return f"{self.settings.describe()} · base: {base}"

    def _refresh_settings(self) -> None:
        self.query_one("#compare-settings", Static).update(self._settings_line())

    # --- messages from the column threads ------------------------------------------------------

    def _column(self, message) -> CompareColumn | None:
        if message.gen != self.gen:
            return None  # from a run that was replaced
        return self.columns[message.index]

    def on_column_status(self, message: ColumnStatus) -> None:
        if column := self._column(message):
            column.set_status(message.status)

    def on_column_chunk(self, message: ColumnChunk) -> None:
        if column := self._column(message):
            column.append(message.chunk, message.n_tokens, message.elapsed_s)

    def on_column_done(self, message: ColumnDone) -> None:
        if column := self._column(message):
            column.finish(message.text, message.n_tokens, message.elapsed_s, message.verdict,
                          message.stopped)

    def on_column_pass_rate(self, message: ColumnPassRate) -> None:
        if column := self._column(message):
            column.show_samples(message.samples, message.verdicts, message.elapsed_s)

    def on_column_error(self, message: ColumnError) -> None:
        if column := self._column(message):
            column.set_status(f"error: {message.error}", "wrong")
            self.notify(f"column {message.index + 1}: {message.error}", severity="error")

    # --- layout ------------------------------------------------------------------------------

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width < NARROW, "-narrow")
        self.set_class(event.size.height < 22, "-short")

    def cancel_all(self) -> None:
        for job in self.jobs:
            job.cancel.set()

    def on_unmount(self) -> None:
        self.cancel_all()

