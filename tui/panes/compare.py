"""The Compare pane: one prompt, three models (base, SFT, RL by default) answering side by side.

The prompt comes from the box, from curated prompts of the run's world (a known fact, a fact
held out of SFT, a person who does not exist, arithmetic, letter counting, 9.11 vs 9.9, "who are
you?"), or from the world browser (ctrl+b: every country, city, person and animal, marked known,
held out or unknown). Every ✓/✗ comes from the one judge (engine/data/judge.py) with its reason; a
typed question is judged when the engine recognises its wording, else it is "—" (not checkable).

Each column samples with a seed of its own (the pane's seed + 1000 × column), shown on its
border; where two columns agree for a while, the token where one leaves the other is
highlighted. "×N" samples N answers per column; family mode runs K test-split problems of one
family through every column, decoded as the report card decodes, with a live tally and its 95%
interval. Settings (temperature, ×N, K, max tokens, seed) are edited in the pane's top row or
from the command palette. Models load in the background on first view.
"""

from __future__ import annotations

import random
import threading
import time
from functools import partial

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Resize, Show
from textual.message import Message
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from engine.api import MODEL_FOLDERS, RLHF_FOLDERS
from tui.client import UsesClient
from tui.panes.compare_column import CompareColumn, column_key, split_key
from tui.panes.compare_runner import (
    FAMILY_LABELS,
    FAMILY_MODES,
    ColumnChunk,
    ColumnDone,
    ColumnError,
    ColumnJob,
    ColumnPassRate,
    ColumnStatus,
    CompareSettings,
    FamilyStep,
    load_model,
    run_family,
    sample_column,
    stream_columns,
    user_text,
)

NARROW = 72  # below this width the columns stack (and scroll) instead of sitting side by side
# (input id, settings field, label, type, lowest, highest)
SETTING_INPUTS = (
    ("set-temperature", "temperature", "temp", "number", 0.0, 5.0),
    ("set-n", "n_samples", "×N", "integer", 1, 64),
    ("set-k", "family_k", "K", "integer", 1, 200),
    ("set-max", "max_tokens", "max", "integer", 1, 4096),
    ("set-seed", "seed", "seed", "integer", 0, 2**31 - 1),
)
FIELD_INPUT = {field: iid for iid, field, *_ in SETTING_INPUTS}


class PromptsReady(Message):
    """The run's world is built: its curated prompts and few-shot examples."""

    def __init__(self, run: str, problems: list, examples: list[tuple[str, str]], error: str = "",
                 world=None):
        super().__init__()
        self.run, self.problems, self.examples, self.error = run, problems, examples, error
        self.world = world


def world_seed_of(info: dict) -> int:
    """The world seed a run was trained on (run.json ``data.world_seed``, else its seed)."""
    return int((info.get("data") or {}).get("world_seed", info.get("seed", 0)))


def default_run(preferred: str | None) -> tuple[str | None, list[str]]:
    """The run to compare (preferred, else the one Sample opens on: runpick.open_model_run) and
    every run/stage choice on disk."""
    from engine.api import RunFolder, checkpoints_root, list_runs, resolve_run
    from tui.runpick import model_choices, open_model_run

    runs = list_runs()
    choices = [column_key(r.name, s) for r, s in model_choices(runs)]
    choices += [column_key(r.name, s) for r in runs for s in RLHF_FOLDERS  # where trained
                if RunFolder(r.path).has_model(s)]
    if preferred:
        path = resolve_run(preferred)
        if path.parent != checkpoints_root():  # a run given by path: offer its stages too
            choices += [column_key(preferred, s) for s in MODEL_FOLDERS + RLHF_FOLDERS
                        if RunFolder(path).has_model(s)]
        return preferred, choices
    run = open_model_run(runs, None)
    return (run.name if run else None), choices


class ComparePane(UsesClient, Vertical):
    """Settings row, prompt box, curated prompts, and three model columns."""

    DEFAULT_CSS = """
    ComparePane { height: 1fr; }
    ComparePane #compare-settings { height: 1; padding: 0 1; background: $boost; }
    ComparePane #compare-settings Label { padding: 0 1; color: $text-muted; }
    ComparePane #compare-settings Input { width: 7; }
    ComparePane #compare-settings #set-n, ComparePane #compare-settings #set-k { width: 5; }
    ComparePane #compare-settings #set-seed { width: 9; }
    ComparePane #compare-mode { width: 1fr; padding: 0 0 0 1; color: $text-muted; }
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

    # ctrl+g = go, ctrl+r = re-roll: the same verbs as in the Sample pane
    BINDINGS = [
        Binding("ctrl+g", "run", "Run"),
        Binding("ctrl+r", "reroll", "Re-roll"),
        Binding("alt+x", "sample_n", "×N pass rate"),
        Binding("alt+f", "family", "Family ×K"),
        Binding("ctrl+t", "toggle_fewshot", "Few-shot base"),
        Binding("ctrl+b", "world", "World"),
        Binding("ctrl+y", "export", "Export", show=False),
        Binding("alt+t", "edit('temperature')", "Set temperature", show=False),
        Binding("alt+n", "edit('n_samples')", "Set ×N", show=False),
        Binding("alt+k", "edit('family_k')", "Set K (family mode)", show=False),
        Binding("alt+m", "edit('max_tokens')", "Set max tokens", show=False),
        Binding("alt+s", "edit('seed')", "Set seed", show=False),
    ]

    def __init__(self, *args, client=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._client = client  # None: the app-wide one (UsesClient)
        self.settings = CompareSettings()
        self.fewshot = False
        self.run_name: str | None = None
        self.world = None  # engine.data.world.World of the run (its data.world_seed)
        self.problems: list = []  # engine.data.tasks.Problem, the curated prompts
        self.examples: list[tuple[str, str]] = []  # few-shot (question, answer) pairs
        self.problem = None  # the Problem of the prompt box (curated, or the user's own)
        self.mode = "single"  # of the last run: single, samples (×N) or family
        self.family_name: str | None = None  # family of the last family run
        self.gen = 0  # generation number: messages of older runs are dropped
        self.jobs: list[ColumnJob] = []
        self._pieces: dict[int, list[str]] = {}  # this run's finished columns' tokens
        self.last_export = None  # the Markdown file of the last export
        self._started = False

    def compose(self) -> ComposeResult:
        preferred = getattr(self.app, "run_name", None)
        self.run_name, choices = default_run(preferred)
        with Horizontal(id="compare-settings"):
            for iid, field, label, kind, _, _ in SETTING_INPUTS:
                yield Label(label)
                yield Input(self._value_text(field), type=kind, compact=True, id=iid,
                            select_on_focus=True)
            yield Static(self._mode_line(), id="compare-mode")
        yield Input(placeholder="Ask the three models… (Enter runs; or pick a prompt below)",
                    compact=True, id="compare-prompt")
        yield OptionList(Option("loading the run's world…", disabled=True), id="compare-curated")
        with Horizontal(id="compare-columns"):
            for i, stage in enumerate(MODEL_FOLDERS):
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
        """World of the run's world seed -> curated prompts and few-shot examples (a worker)."""
        from engine.api import RunFolder, build_world, curated_prompts, read_json, resolve_run
        from tui.panes.compare_fewshot import fewshot_examples

        try:
            world = build_world(world_seed_of(read_json(RunFolder(resolve_run(run)).run_json)))
            self.post_message(PromptsReady(run, curated_prompts(world), fewshot_examples(world),
                                           world=world))
        except Exception as e:  # missing run.json, a world the code no longer builds, …
            self.post_message(PromptsReady(run, [], [], f"{type(e).__name__}: {e}"))

    def on_prompts_ready(self, message: PromptsReady) -> None:
        self.problems, self.examples = message.problems, message.examples
        self.world = message.world
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
        options.add_options(
            Option(Text.assemble(("family", "bold magenta"), f"  {label}: K test problems "
                                 "through every column, tallied"), id=f"family:{fam}")
            for fam, label in FAMILY_MODES
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
        option_id = str(event.option.id)
        if option_id.startswith("family:"):
            self.action_family(option_id.partition(":")[2])
            return
        problem = self.problems[int(option_id)]
        self.problem = problem
        self.query_one("#compare-prompt", Input).value = user_text(problem)
        self.action_run()

    @on(Input.Submitted, "#compare-prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        self.action_run()

    def current_problem(self):
        """The curated Problem if the box still holds its text, else what the judge recognises
        in the user's own prompt, else an uncheckable one (answer "")."""
        text = self.query_one("#compare-prompt", Input).value.strip()
        if not text:
            return None
        if self.problem is not None and user_text(self.problem).strip() == text:
            return self.problem
        for p in self.problems:
            if user_text(p).strip() == text:
                return p
        if self.world is not None:
            from engine.api import recognise

            if (found := recognise(self.world, text)) is not None:
                return found
        from engine.api import Problem

        return Problem(family="custom", messages=[{"role": "user", "content": text}], answer="")

    @on(CompareColumn.Picked)
    def _picked(self, event: CompareColumn.Picked) -> None:
        if self._started:  # a Select's first value arrives at mount: on_show loads those
            self._load(event.column)

    # --- settings -----------------------------------------------------------------------------

    def _value_text(self, field: str) -> str:
        value = getattr(self.settings, field)
        return f"{value:g}" if isinstance(value, float) else str(value)

    def apply_settings(self) -> None:
        """Take every settings box's value that is in range; the others snap back to the value
        in force. Runs on Enter in a box, when a box loses focus, and before every run."""
        for iid, field, _, kind, low, high in SETTING_INPUTS:
            raw = self.query_one(f"#{iid}", Input).value
            try:
                value = float(raw) if kind == "number" else int(raw)
            except ValueError:
                continue
            if low <= value <= high:
                setattr(self.settings, field, value)
        self._show_settings()

    @on(Input.Submitted, "#compare-settings Input")
    def _setting_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.apply_settings()
        self.query_one("#compare-prompt", Input).focus()

    @on(Input.Blurred, "#compare-settings Input")
    def _setting_left(self, event: Input.Blurred) -> None:
        self.apply_settings()

    def set_setting(self, field: str, value) -> None:
        """Change a setting and show it in its box (re-roll, the palette, tests)."""
        setattr(self.settings, field, value)
        self._show_settings()

    def _show_settings(self) -> None:
        for field, iid in FIELD_INPUT.items():
            box = self.query_one(f"#{iid}", Input)
            text = self._value_text(field)
            if box.value != text:
                box.value = text
        self._refresh_settings()

    def action_edit(self, field: str) -> None:
        """Put the cursor in a setting's box (from the palette or alt+letter)."""
        self.query_one(f"#{FIELD_INPUT[field]}", Input).focus()

    # --- actions -----------------------------------------------------------------------------

    def _new_jobs(self, problem) -> list[ColumnJob]:
        for job in self.jobs:
            job.cancel.set()  # older threads stop at their next token
        self.gen += 1
        self.problem = problem
        self.jobs, self._pieces = [], {}
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
        self.apply_settings()
        problem = self.current_problem()
        if problem is None:
            self.notify("Type a prompt or pick one of the curated prompts first.",
                        severity="warning")
            return []
        jobs = self._new_jobs(problem)
        for job in jobs:
            column = self.columns[job.index]
            column.begin(("few-shot document · " if job.is_fewshot else "") + note, job.seed)
        return jobs

    def action_run(self) -> None:
        """Stream one answer per column, all at the same time (one batch where models share
        a shape)."""
        jobs = self._begin("starting…")
        if jobs:
            self.mode = "single"
            self.run_worker(partial(stream_columns, self.client, jobs, self.post_message),
                            thread=True, group="columns", exit_on_error=False)

    def action_reroll(self) -> None:
        """A new base seed (so new seeds for every column), then run again."""
        self.set_setting("seed", random.randrange(1, 100_000))
        self.action_run()

    def action_sample_n(self) -> None:
        """Sample N answers per column and show each column's pass rate."""
        jobs = self._begin(f"sampling ×{self.settings.n_samples}…")
        if jobs:
            self.mode = "samples"
        for job in jobs:
            self.run_worker(partial(sample_column, self.client, job, self.post_message),
                            thread=True, group=f"column-{job.index}", exit_on_error=False)

    def family_of_prompt(self) -> str:
        """The family mode that matches the prompt box (sums when none does)."""
        problem = self.current_problem()
        family = getattr(problem, "family", "")
        family = {"fact_known": "fact_heldout"}.get(family, family)
        return family if family in FAMILY_LABELS else FAMILY_MODES[0][0]

    def action_family(self, family: str | None = None) -> None:
        """K distinct test-split problems of one family through every column, each column's
        tally and its 95% interval growing as they are answered."""
        if self.world is None:
            self.notify("The run's world is still being built; try again in a moment.",
                        severity="warning")
            return
        from engine.api import eval_problems

        self.apply_settings()
        family = family or self.family_of_prompt()
        problems = eval_problems(self.world, family, self.settings.family_k, split="test")
        if not problems:
            self.notify(f"no test problems of {family}", severity="warning")
            return
        jobs = self._new_jobs(problems[0])
        self.mode, self.family_name = "family", family
        label = FAMILY_LABELS[family]
        self.query_one("#compare-prompt", Input).value = ""
        for job in jobs:
            self.columns[job.index].begin_family(label, len(problems))
        if len(problems) < self.settings.family_k:
            self.notify(f"{label}: only {len(problems)} distinct test problems exist")
        if jobs:
            self.run_worker(partial(run_family, self.client, jobs, problems, self.world, family,
                                    self.post_message),
                            thread=True, group="columns", exit_on_error=False)

    def action_toggle_fewshot(self) -> None:
        """The base column answers a few-shot Q/A document instead of the chat prompt."""
        self.fewshot = not self.fewshot
        self._refresh_settings()
        state = "a few-shot Q/A document" if self.fewshot else "the chat-formatted prompt (raw)"
        self.notify(f"base column now continues {state}")

    def action_world(self) -> None:
        """Browse the run's world; a row's "ask in Compare" fills the prompt box."""
        if self.world is None:
            self.notify("The run's world is still being built; try again in a moment.",
                        severity="warning")
            return
        from tui.panes.world import WorldScreen

        def ask(question: str | None) -> None:
            if question:
                box = self.query_one("#compare-prompt", Input)
                box.value = question
                box.focus()

        self.app.push_screen(WorldScreen(self.world), ask)

    def action_export(self) -> None:
        """The last run (prompt, each column's text, mark, reason, seed; settings) as Markdown
        and JSON in the export folder."""
        from tui.exports import write_export
        from tui.panes.compare_export import session_json, session_markdown, session_record

        record = session_record(self)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            md = write_export(f"compare-{stamp}.md", session_markdown(record))
            write_export(f"compare-{stamp}.json", session_json(record))
        except OSError as e:
            self.notify(f"Could not export: {e}", severity="error")
            return
        self.last_export = md
        self.notify(f"Exported to {md} (and .json)", title="Export")

    def _mode_line(self) -> str:
        return "base: few-shot doc" if self.fewshot else "base: raw chat"

    def _refresh_settings(self) -> None:
        self.query_one("#compare-mode", Static).update(self._mode_line())

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
                          message.stopped, message.pieces)
            self._pieces[message.index] = message.pieces
            if len(self._pieces) == len(self.jobs) > 1:
                self._mark_divergence()

    def _mark_divergence(self) -> None:
        from tui.panes.compare_export import divergence

        columns = self.columns
        for i, (at, same) in divergence(self._pieces).items():
            columns[i].mark_divergence(at, None if same is None else columns[same].stage)

    def on_column_pass_rate(self, message: ColumnPassRate) -> None:
        if column := self._column(message):
            column.show_samples(message.samples, message.verdicts, message.elapsed_s)

    def on_family_step(self, message: FamilyStep) -> None:
        if column := self._column(message):
            column.add_family_step(message.i, message.total, message.problem, message.text,
                                   message.verdict)

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
