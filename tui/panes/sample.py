"""The Sample pane: watch a model choose its next token.

Pick a run's model, type a prompt (a raw document for a base model, a user message in chat
mode), and generate: tokens stream in shaded by how likely the model thought they were. Select
any token to see the distribution it was drawn from. Step mode draws one token per key press,
showing the dice before the roll; re-roll with a new seed to see how much is chance.

Generation runs in a worker thread (tui/panes/sample_run.py) through the app's ModelClient
(tui/client.py); the UI only applies batches of tokens, ~30 a second.
"""

from __future__ import annotations

import random
import time

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select, Static, TextArea

from tui.panes.sample_run import (
    Knobs,
    SampleDone,
    SampleFailed,
    SampleJob,
    SamplePending,
    SampleStarted,
    SampleStatus,
    SampleTokens,
    parse_knobs,
    run_job,
)
from tui.panes.sample_view import DistributionView, TokenView

MODES = [("chat", True), ("raw", False)]
PANEL_S = 0.15  # while streaming, the distribution panel follows the newest token ~7x a second
REASONS = {"stop": "stopped at the end token", "max": "reached max tokens",
           "context": "context is full", "cancelled": "cancelled"}


class SamplePane(Vertical):
    """Prompt, model and knobs on top; the shaded token stream and one token's distribution
    below; a status line at the bottom."""

    DEFAULT_CSS = """
    SamplePane { height: 1fr; }
    SamplePane .sample-row { height: 1; margin: 0 1 0 0; }
    SamplePane .sample-row Label { padding: 0 1; color: $text-muted; }
    SamplePane #sample-model { width: 32; }
    SamplePane #sample-mode { width: 11; }
    SamplePane .sample-row Input { width: 8; }
    SamplePane #sample-prompt { height: 3; margin: 0 1; }
    SamplePane #sample-body { height: 1fr; }
    SamplePane #sample-output { width: 1fr; height: 1fr; }
    SamplePane #sample-help { width: 1fr; height: 1fr; padding: 1 2; color: $text-muted; }
    SamplePane #sample-status { height: 1; padding: 0 1; background: $panel; }
    """
    BINDINGS = [
        Binding("ctrl+g", "generate", "Generate", tooltip="Sample until the end token"),
        Binding("ctrl+n", "step", "Step", tooltip="Draw one token: distribution, then the roll"),
        Binding("ctrl+r", "reroll", "Re-roll", tooltip="Same prompt, next seed"),
        Binding("escape", "cancel", "Stop", tooltip="Cancel the generation"),
        Binding("ctrl+t", "toggle_mode", "Chat/raw", tooltip="Switch chat and raw-document mode"),
    ]

    STEP_REVEAL_S = 0.35  # step mode: how long the dice roll on screen (tests set 0)

    def __init__(self, *args, client=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._client = client  # a tui.client.ModelClient; the app-wide one if not given
        self.gen = 0  # generation number: messages of older generations are ignored
        self.job: SampleJob | None = None
        self.running = False
        self.events: list = []  # TokenEvents of the current generation, in order
        self.status_text = ""
        self.notice = ""  # e.g. prompt truncated: stays on the status line for this generation
        self._t_first: float | None = None  # when the UI got the first token (display rate)
        self._t_panel = 0.0  # last redraw of the distribution panel and status while streaming
        self._models: list[tuple[str, str]] | None = None  # what the picker lists
        self._mode_for: tuple[str, str] | None = None  # the model the mode was defaulted for
        self._warned_missing = False

    @property
    def client(self):
        if self._client is None:
            from tui.client import shared_client

            self._client = shared_client()
        return self._client

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal(classes="sample-row"):
            yield Label("model")
            yield Select([], id="sample-model", prompt="no model chosen", compact=True)
            yield Label("mode")
            yield Select(MODES, id="sample-mode", value=False, compact=True, allow_blank=False)
        with Horizontal(classes="sample-row"):
            yield Label("temp")
            yield Input("0.8", id="sample-temp", type="number", compact=True)
            yield Label("top-k")
            yield Input("50", id="sample-topk", type="integer", compact=True)
            yield Label("top-p")
            yield Input("", id="sample-topp", type="number", compact=True, placeholder="off")
            yield Label("max")
            yield Input("128", id="sample-max", type="integer", compact=True)
            yield Label("seed")
            yield Input("1", id="sample-seed", type="integer", compact=True, placeholder="rnd")
        yield TextArea("", id="sample-prompt", compact=True, soft_wrap=True,
                       placeholder="Prompt: a document to continue, or a message in chat mode")
        with Horizontal(id="sample-body"):
            yield TokenView(id="sample-output")
            yield Static("", id="sample-help")
            yield DistributionView(id="sample-dist")
        yield Static("", id="sample-status")

    def on_mount(self) -> None:
        self.refresh_models()

    def on_show(self) -> None:
        if not self.running:
            self.refresh_models()  # a run trained since may have appeared
        self.call_after_refresh(self._focus_prompt)

    def _focus_prompt(self) -> None:
        """Arriving at the pane, typing goes to the prompt (unless focus is in the pane)."""
        if self.app.focused is None or self not in self.app.focused.ancestors:
            self.query_one(TextArea).focus()

    # ------------------------------------------------------------------ models

    def refresh_models(self) -> None:
        """Fill the model picker with run × stage; say how to get a model when there is none."""
        from engine.runs import checkpoints_root, list_runs

        runs = list_runs()
        options = [(f"{r.name} · {s}", (r.name, s)) for r in runs for s in r.stages]
        picker = self.query_one("#sample-model", Select)
        keep = picker.value
        values = [v for _, v in options]
        wanted = getattr(self.app, "run_name", None)
        if values != self._models:  # unchanged: leave the picker (and its value) alone
            self._models = values
            picker.set_options(options)
            if keep in values:
                picker.value = keep
            elif values:
                mine = [v for v in values if v[0] == wanted]
                picker.value = mine[-1] if mine else values[0]  # the app's run: latest stage
        if wanted and all(r.name != wanted for r in runs) and not self._warned_missing:
            self._warned_missing = True
            here = ", ".join(r.name for r in runs) or "none"
            self.app.notify(f"no run named {wanted!r} in {checkpoints_root()}; runs here: {here}",
                            severity="warning")
        help_box = self.query_one("#sample-help", Static)
        help_box.display = not options
        self.query_one("#sample-output").display = bool(options)
        if not options:
            waiting = [r.name for r in runs if not r.stages]
            help_box.update(no_models_text(str(checkpoints_root()), waiting))
            self.set_status("no models yet")

    def selected_model(self) -> tuple[str, str] | None:
        value = self.query_one("#sample-model", Select).value
        return value if isinstance(value, tuple) else None

    @on(Select.Changed, "#sample-model")
    def _model_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, tuple) and event.value != self._mode_for:
            self._mode_for = event.value  # base models continue documents; tuned ones chat
            self.query_one("#sample-mode", Select).value = event.value[1] != "base"

    # ------------------------------------------------------------------ actions

    def action_generate(self) -> None:
        if self.running and self.job is not None and self.job.step:
            self.job.free_run.set()  # let the stepped generation run on to its end
            self.job.permits.release()
            return
        self.start(step=False)

    def action_step(self) -> None:
        if self.running and self.job is not None:
            if self.job.stepping():
                self.job.permits.release()
            else:
                self.notify("a generation is running: Esc stops it", severity="warning")
            return
        if self.start(step=True):
            self.job.permits.release()

    def action_reroll(self) -> None:
        box = self.query_one("#sample-seed", Input)
        try:
            box.value = str(int(box.value) + 1)
        except ValueError:
            box.value = str(random.randrange(1_000_000))
        self.start(step=False)

    def action_cancel(self) -> None:
        """Stop the generation; when none runs, drop the token selection (follow the newest)."""
        if self.running and self.job is not None:
            self.job.cancel.set()
            self.set_status("stopping…")
        else:
            self.query_one(TokenView).selected = None

    def action_toggle_mode(self) -> None:
        mode = self.query_one("#sample-mode", Select)
        mode.value = not mode.value

    def start(self, step: bool) -> bool:
        """Start a generation from the current inputs; False (with a notice) if they are bad."""
        model = self.selected_model()
        if model is None:
            self.notify("no model to sample: train one with `deepdive train --preset tiny`",
                        severity="warning")
            return False
        try:
            knobs = self.read_knobs()
        except ValueError as e:
            self.notify(str(e), severity="error")
            return False
        if self.job is not None:
            self.job.cancel.set()
        self.gen += 1
        self.job = SampleJob(self.gen, model[0], model[1], self.query_one(TextArea).text,
                             bool(self.query_one("#sample-mode", Select).value), knobs,
                             step=step, reveal_s=self.STEP_REVEAL_S)
        self.events, self.notice = [], ""
        self._t_first = None
        self.running = True
        view = self.query_one(TokenView)
        view.clear()
        self.query_one(DistributionView).show_hint()
        self.set_status(f"{model[0]}/{model[1]} · starting…")
        self._run(self.job)
        return True

    def read_knobs(self) -> Knobs:
        value = {name: self.query_one(f"#sample-{name}", Input).value
                 for name in ("temp", "topk", "topp", "max", "seed")}
        return parse_knobs(value["temp"], value["topk"], value["topp"], value["max"],
                           value["seed"])

    @work(thread=True, exclusive=True, group="sample")
    def _run(self, job: SampleJob) -> None:
        run_job(self.client, job, self.post_message)

    # ------------------------------------------------------------------ worker messages

    def _current(self, message) -> bool:
        message.stop()
        return message.gen == self.gen

    def on_sample_status(self, message: SampleStatus) -> None:
        if self._current(message):
            self.set_status(message.text)

    def on_sample_started(self, message: SampleStarted) -> None:
        if not self._current(message):
            return
        # a truncated prompt starts with "…": the model never sees its beginning
        self.query_one(TokenView).clear(("…" if message.dropped else "") + message.context)
        if message.dropped:
            self.notice = (f"⚠ prompt truncated: first {message.dropped} of {message.n_prompt} "
                           f"tokens dropped (context {message.block_size})")
            self.notify(self.notice, severity="warning")
        self.set_status("sampling…")

    def on_sample_pending(self, message: SamplePending) -> None:
        if not self._current(message):
            return
        self.query_one(TokenView).set_pending(True)
        self.query_one(DistributionView).show(message.event, self._title(message.event.index),
                                              drawn=False)

    def on_sample_tokens(self, message: SampleTokens) -> None:
        if not self._current(message):
            return
        if self._t_first is None:
            self._t_first = time.perf_counter()
        self.events.extend(message.events)
        view = self.query_one(TokenView)
        view.pending = False
        view.add_tokens([(e.text, e.prob) for e in message.events])
        now = time.perf_counter()
        if now - self._t_panel < PANEL_S and not (self.job and self.job.step):
            return  # the side panel and status redraw a few times a second, not per batch
        self._t_panel = now
        self._show_latest()
        if self.job is not None and self.job.stepping():
            self.set_status(f"step mode · {count(len(self.events))} · ctrl+n: next token, "
                            "ctrl+g: run on")
            return
        rate = len(self.events) / message.elapsed if message.elapsed > 0 else 0.0
        self.set_status(f"{count(len(self.events))} · {rate:,.0f} tok/s")

    def _show_latest(self) -> None:
        """The newest token's distribution, unless the user selected one."""
        if self.events and self.query_one(TokenView).selected is None:
            last = self.events[-1]
            self.query_one(DistributionView).show(last, self._title(last.index))

    def on_sample_done(self, message: SampleDone) -> None:
        if not self._current(message):
            return
        self.running = False
        self.query_one(TokenView).set_pending(False)
        self._show_latest()
        rate = message.n / message.elapsed if message.elapsed > 0 else 0.0
        knobs = self.job.knobs.describe() if self.job else ""
        self.set_status(f"{count(message.n)} · {rate:,.0f} tok/s · {REASONS[message.reason]}"
                        f" · {knobs}")

    def on_sample_failed(self, message: SampleFailed) -> None:
        if not self._current(message):
            return
        self.running = False
        self.query_one(TokenView).set_pending(False)
        self.set_status(f"failed: {message.error}")
        self.app.notify(message.error, title="Sampling failed", severity="error", timeout=8)

    @on(TokenView.Selected)
    def _token_selected(self, message: TokenView.Selected) -> None:
        if message.index is not None and message.index < len(self.events):
            event = self.events[message.index]
            self.query_one(DistributionView).show(event, self._title(event.index))
        else:
            self._show_latest()

    def _title(self, index: int) -> str:
        return f"token #{index + 1}"

    def set_status(self, text: str) -> None:
        self.status_text = f"{self.notice} · {text}" if self.notice else text
        self.query_one("#sample-status", Static).update(self.status_text, layout=False)

    def selected_event(self):
        """The TokenEvent the distribution panel shows, if it shows a sampled one."""
        index = self.query_one(TokenView).selected
        if index is not None and index < len(self.events):
            return self.events[index]
        return self.events[-1] if self.events else None


def count(n: int) -> str:
    return f"{n} token" if n == 1 else f"{n} tokens"


def no_models_text(root: str, waiting: list[str]) -> str:
    lines = [f"No trained models in {root} yet.", "",
             "Train one (a few minutes on a laptop CPU):", "    deepdive train --preset tiny", "",
             "or point DEEPDIVE_CHECKPOINTS at a folder of runs (the repository's "
             "checkpoints/, with its small committed tiny run, if you have it)."]
    if waiting:
        lines += ["", f"Runs without a model yet (still training?): {', '.join(waiting)}"]
    return "\n".join(lines)

