"""The Sample pane: watch a model choose its next token.

Pick a run's model, type a prompt (a raw document for a base model, a user message in chat
mode), and generate: tokens stream in shaded by how likely the model thought they were. Select
any token to see the distribution it was drawn from, and the model's own (T=1) odds beside it.
Step mode draws one token per key press, showing the dice before the roll; re-roll with a new
seed to see how much is chance. In chat mode each reply joins the conversation: the next
message continues it, and the stream shows the whole conversation as the tokens the model reads.

Generation runs in a worker thread (tui/panes/sample_run.py) through the app's ModelClient
(engine/api.py); the UI only applies batches of tokens, ~30 a second.
"""

from __future__ import annotations

import random
import time

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select, Static, TextArea

from tui.client import UsesClient
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
from tui.widgets.picker import Picker

MODES = [("chat", True), ("raw", False)]
PANEL_S = 0.15  # while streaming, the distribution panel follows the newest token ~7x a second
REASONS = {"stop": "stopped at the end token", "max": "reached max tokens",
           "context": "context is full", "cancelled": "cancelled"}


HELP = """\
A model writes token by token, with each step's most likely alternatives: the drawn column is
the distribution the token was drawn from (after temperature, top-k, top-p), T=1 the model's
own odds before those knobs. In chat mode (SFT/RL models) each reply joins the conversation;
the stream shows the whole conversation as the token sequence the model reads, rendered exactly
as training renders it. Esc stops a generation, then clears the selection, then starts a new
conversation. ctrl+c copies the sample's text; the palette also copies its ids and exports it.
"""


class SamplePane(UsesClient, Vertical):
    """Prompt, model and knobs on top; the shaded token stream and one token's distribution
    below; a status line at the bottom."""

    DEFAULT_CSS = """
    SamplePane { height: 1fr; }
    SamplePane .sample-row { height: 1; margin: 0 1 0 0; }
    SamplePane .sample-row Label { padding: 0 1; color: $text-muted; }
    SamplePane #sample-model { width: 36; }
    SamplePane #sample-mode { width: 11; }
    SamplePane .sample-row Input { width: 8; }
    SamplePane #sample-prompt { height: 3; margin: 0 1; }
    SamplePane #sample-body { height: 1fr; }
    SamplePane #sample-output { width: 1fr; height: 1fr; }
    SamplePane #sample-help { width: 1fr; height: 1fr; padding: 1 2; color: $text-muted; }
    SamplePane #sample-status { height: 1; padding: 0 1; background: $panel; }
    """
    # Keys follow the app-wide table (tui/help.py KEY_TABLE): one key, one verb in every pane.
    BINDINGS = [
        Binding("ctrl+g", "generate", "Generate", tooltip="Sample until the end token"),
        Binding("ctrl+n", "step", "Step", tooltip="Draw one token: distribution, then the roll"),
        Binding("ctrl+r", "reroll", "Re-roll", tooltip="Same prompt, next seed"),
        Binding("escape", "cancel", "Stop", tooltip="Stop; else clear the selection; else a new "
                "conversation"),
        Binding("ctrl+t", "toggle_mode", "Chat/raw", tooltip="Switch chat and raw-document mode"),
        Binding("ctrl+f", "pick_model", "Model", tooltip="Choose the run and stage to sample"),
        Binding("ctrl+c", "copy_text", "Copy", tooltip="Copy the sample's text", show=False),
    ]
    # palette commands without a key: (title, help, action)
    PALETTE = [
        ("Copy sample text", "The prompt and the sampled text to the clipboard (ctrl+c)",
         "copy_text"),
        ("Copy sample token ids", "The ids of the prompt and the sampled tokens", "copy_ids"),
        ("Export sample (Markdown + JSON)", "Model, knobs, text and every token's odds into "
         "the export folder", "export"),
        ("New conversation", "Forget the chat turns so far (Esc when idle does it too)",
         "new_chat"),
    ]

    STEP_REVEAL_S = 0.35  # step mode: how long the dice roll on screen (tests set 0)

    def __init__(self, *args, client=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._client = client  # None: the app-wide one (UsesClient)
        self.gen = 0  # generation number: messages of older generations are ignored
        self.job: SampleJob | None = None
        self.running = False
        self.events: list = []  # TokenEvents of the current generation, in order
        self.status_text = ""
        self.notice = ""  # e.g. prompt truncated: stays on the status line for this generation
        self._t_first: float | None = None  # when the UI got the first token (display rate)
        self._t_panel = 0.0  # last redraw of the distribution panel and status while streaming
        self._models: tuple | None = None  # what the picker lists: (values, labels)
        self._mode_for: tuple[str, str] | None = None  # the model the mode was defaulted for
        self._warned_missing = False
        # chat mode: the finished turns (user, assistant, ...) that the next message continues
        self.conversation: list[dict] = []
        self.context_ids: list[int] = []  # the ids the model saw in the current generation
        self._turn: list[dict] = []  # the user message of the running generation
    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal(classes="sample-row"):
            yield Label("model")
            yield Picker([], id="sample-model", prompt="no model chosen", compact=True)
            yield Label("mode")
            yield Select(MODES, id="sample-mode", value=False, compact=True, allow_blank=False)
        with Horizontal(classes="sample-row"):
            yield Label("temp")
            yield Input("0.8", id="sample-temp", type="number", compact=True)
            yield Label("top-k")
            # empty is a valid setting (off / a random seed), never shown as an error
            yield Input("50", id="sample-topk", type="integer", compact=True, placeholder="off",
                        valid_empty=True)
            yield Label("top-p")
            yield Input("", id="sample-topp", type="number", compact=True, placeholder="off",
                        valid_empty=True)
            yield Label("max")
            yield Input("128", id="sample-max", type="integer", compact=True)
            yield Label("seed")
            yield Input("1", id="sample-seed", type="integer", compact=True, placeholder="rnd",
                        valid_empty=True)
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
        """Fill the model picker with run × stage; say how to get a model when there is none.
        It opens on the app's run (its SFT model, else the best it has), a run still training
        labelled so."""
        from engine.api import checkpoints_root, list_runs
        from tui.runpick import model_choices, open_model_run, open_stage, run_label
        from tui.widgets.picker import refill

        runs = list_runs()
        options = [(f"{run_label(r)} · {s}", (r.name, s)) for r, s in model_choices(runs)]
        picker = self.query_one("#sample-model", Select)
        values = [v for _, v in options]
        labels = [label for label, _ in options]
        wanted = getattr(self.app, "run_name", None)
        if (values, labels) != self._models:  # unchanged: leave the picker (and value) alone
            self._models = (values, labels)
            if not refill(picker, options) and values:
                run = open_model_run(runs, wanted)
                stage = open_stage(run) if run else None
                picker.value = (run.name, stage) if run and stage else values[0]
        given = getattr(self.app, "run_given", True)  # the user named it: say it is missing
        if (wanted and given and all(r.name != wanted for r in runs)
                and not self._warned_missing):
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

    @on(Select.Changed, "#sample-mode")
    def _mode_changed(self, event: Select.Changed) -> None:
        if not event.value and self.conversation:
            self.action_new_chat()  # a raw document has no turns

    @on(Picker.Closed)
    def _picker_closed(self, event: Picker.Closed) -> None:
        """After choosing a model, typing goes to the prompt again."""
        event.stop()
        if self.app.focused is event.picker:
            self.query_one(TextArea).focus()

    def action_pick_model(self) -> None:
        picker = self.query_one("#sample-model", Select)
        picker.focus()
        picker.expanded = True

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
        prompt = self.query_one(TextArea)
        if (self.chat_mode() and len(self.conversation) >= 2 and not self.running
                and not prompt.text.strip()):
            # chat: the last reply again, from the same conversation, with the next seed
            *self.conversation, user, _ = self.conversation
            prompt.text = user["content"]
        self.start(step=False)

    def action_cancel(self) -> None:
        """Stop the generation; when none runs, drop the token selection (follow the newest);
        with nothing selected either, start a new conversation."""
        if self.running and self.job is not None:
            self.job.cancel.set()
            self.set_status("stopping…")
        elif self.query_one(TokenView).selected is not None:
            self.query_one(TokenView).selected = None
        elif self.conversation:
            self.action_new_chat()

    def action_new_chat(self) -> None:
        if self.running and self.job is not None:
            self.job.cancel.set()
        self.conversation = []
        self.gen += 1  # whatever still arrives belongs to the old conversation
        self.running = False
        self.events, self.context_ids = [], []
        self.query_one(TokenView).clear()
        self.query_one(DistributionView).show_hint()
        self.set_status("new conversation: type a message, ctrl+g sends it")
        self.notify("new conversation", timeout=2)

    def chat_mode(self) -> bool:
        return bool(self.query_one("#sample-mode", Select).value)

    # ------------------------------------------------------------------ copy and export

    def sample_prompt(self) -> str:
        """The prompt as the model saw it (specials included), as plain text."""
        if self.job is None or not self.context_ids:
            return ""
        try:
            tok = self.client.tokenizer(self.job.run)  # cached since the generation loaded it
        except Exception:
            return ""
        return ("…" if self.notice else "") + tok.decode(self.context_ids)

    def sample_text(self) -> str:
        """The prompt as the model saw it, then what it wrote."""
        return self.sample_prompt() + "".join(e.text for e in self.events)

    def action_copy_text(self) -> None:
        if not self.events and not self.context_ids:
            self.notify("nothing sampled yet: ctrl+g generates", severity="warning")
            return
        self.app.copy_to_clipboard(self.sample_text())
        self.notify(f"copied the sample's text ({len(self.events)} sampled tokens)", timeout=3)

    def action_copy_ids(self) -> None:
        ids = self.context_ids + [e.id for e in self.events]
        if not ids:
            self.notify("nothing sampled yet: ctrl+g generates", severity="warning")
            return
        self.app.copy_to_clipboard(" ".join(map(str, ids)))
        self.notify(f"copied {len(ids)} token ids ({len(self.context_ids)} prompt, "
                    f"{len(self.events)} sampled)", timeout=3)

    def action_export(self) -> None:
        import json

        from tui.exports import stamped, write_export

        if self.job is None or not self.events:
            self.notify("nothing sampled yet: ctrl+g generates", severity="warning")
            return
        job = self.job
        stem = stamped(f"sample-{job.run}-{job.stage}", "")
        tokens = [{"id": e.id, "text": e.text, "p": e.prob,
                   "p_t1": getattr(e, "raw", {}).get(e.id),
                   "top": [[i, t, p] for i, t, p in e.top]} for e in self.events]
        data = {"run": job.run, "stage": job.stage, "chat": job.chat,
                "conversation": self.conversation, "knobs": job.knobs.describe(),
                "prompt_ids": self.context_ids, "tokens": tokens}
        text = "".join(e.text for e in self.events)
        md = (f"# Sample: {job.run}/{job.stage}\n\n{job.knobs.describe()}\n\n"
              "## Prompt (as the model saw it)\n\n```\n"
              f"{self.sample_prompt()}\n```\n\n## Sampled\n\n```\n{text}\n```\n")
        try:
            paths = [write_export(stem + ".md", md),
                     write_export(stem + ".json", json.dumps(data, ensure_ascii=False, indent=1))]
        except OSError as e:
            self.notify(f"could not export: {e}", severity="error")
            return
        self.notify("sample exported to " + " and ".join(map(str, paths)), title="Export")

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
        chat = self.chat_mode()
        text = self.query_one(TextArea).text
        self.job = SampleJob(self.gen, model[0], model[1], text, chat, knobs,
                             step=step, reveal_s=self.STEP_REVEAL_S,
                             history=list(self.conversation) if chat else [])
        self._turn = [{"role": "user", "content": text}] if chat else []
        self.events, self.notice, self.context_ids = [], "", []
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
        # the prompt as the tokens the model sees; a truncated one starts with "…" (the model
        # never sees its beginning)
        self.context_ids = [i for i, _ in message.tokens]
        self.query_one(TokenView).clear("…" if message.dropped else "", message.tokens,
                                        message.specials)
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
        turn = ""
        if self._turn and message.reason != "cancelled":
            # the reply joins the conversation; the next message continues it
            self.conversation += [*self._turn, {"role": "assistant", "content": message.reply}]
            self._turn = []
            self.query_one(TextArea).text = ""
            turn = (f"turn {len(self.conversation) // 2} · type the next message (Esc Esc: "
                    "new conversation) · ")
        self.set_status(f"{turn}{count(message.n)} · {rate:,.0f} tok/s · "
                        f"{REASONS[message.reason]} · {knobs}")

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

