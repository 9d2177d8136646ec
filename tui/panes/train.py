"""The Train pane: start or attach to a run and watch its stages unfold.

It only reads the run's ``events.jsonl`` (through ``engine.progress.watch.RunWatch``, folded by
the reducer every front end shares) and draws; starting, stopping and resuming a trainer are
``train_proc.Trainers``'. A trainer started here runs as a child process, one started
elsewhere (another terminal, tmux, torchrun) is followed the same way. A timer polls ~4×/s; it
stats the file first, so an idle or finished run costs next to nothing, and views redraw only
when the state changed.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Static

from engine.api import (
    RunState,
    RunWatch,
    StageState,
    checkpoints_root,
    estimate_run_s,
    fmt_bytes,
    fmt_duration,
    fmt_num,
    list_runs,
    stage_status,
    stats_parts,
)
from tui.panes import train_proc
from tui.panes.train_plot import BraillePlot, Curve
from tui.read_only import refused
from tui.runpick import RootWatch, open_run, run_label
from tui.widgets.confirm import Confirm
from tui.widgets.picker import refill

POLL_S = 0.25  # how often the events file is looked at (a stat; reads only when it grew)
DRAW_MIN_S = 0.5  # a training run redraws at most twice a second, however fast it logs
PRESETS = ("tiny", "micro", "small", "medium")
STAGE_TITLES = {"sft": "SFT", "rl": "RL", "reward": "reward model", "rlhf": "RLHF"}
# Curves per stage: (y axis: what is plotted, [(series, label, colour)]); other stages show
# what they have. The x axis is always the stage's step.
PLOTS = {
    "pretrain": [("loss", [("loss", "train", "cyan"), ("val_loss", "val", "magenta"),
                           ("val_loss_user", "val (your text)", "yellow")])],
    "sft": [("loss", [("loss", "train", "cyan"), ("val_loss", "val", "magenta")])],
    "control": [("loss", [("loss", "train", "cyan"), ("val_loss", "val", "magenta")])],
    "rl": [
        ("reward", [("reward", "reward", "green"), ("pass1", "pass@1", "yellow"),
                    ("heldout_pass1", "dev pass@1", "magenta")]),
        ("tokens/reply", [("resp_len", "mean", "cyan")]),
    ],
    "reward": [
        ("loss", [("loss", "train", "cyan")]),
        ("pair accuracy", [("pair_acc_dev", "dev", "magenta"), ("pair_acc_test", "test", "yellow"),
                           ("self_agreement_test", "two raters", "green")]),
    ],
    # the reward model's score (proxy) against the hidden raters' (gold): over-optimisation is
    # the proxy rising on while gold turns down
    "rlhf": [
        ("score", [("proxy", "proxy (samples)", "green"), ("rlhf_proxy_test", "proxy (test)",
                                                            "yellow"),
                   ("rlhf_gold_dev", "gold (dev)", "cyan"), ("rlhf_gold_test", "gold (test)",
                                                              "magenta")]),
        ("KL to SFT", [("kl", "samples", "red"), ("rlhf_kl", "dev", "blue")]),
    ],
}
COLORS = ("cyan", "magenta", "green", "yellow", "blue", "red")
STATUS_STYLES = {"running": "bold yellow", "done": "green", "failed": "bold red",
                 "stopped": "magenta"}


def stage_cell(st: StageState, run_ended: bool) -> Text:
    """What the track shows for one stage (``stage_status``'s words, coloured)."""
    words = stage_status(st, run_ended)
    if st.status == "running":  # the mark stands out, the ETA recedes
        mark, _, rest = words.partition(" ")
        pct, eta, tail = rest.partition(" ETA ")
        text = Text(mark + " ", style=STATUS_STYLES["running"])
        text.append(pct)
        if eta:
            text.append(f" ETA {tail}", style="dim")
        return text
    return Text(words, style=STATUS_STYLES.get(st.status, "dim"))


def track_table(state: RunState) -> Table:
    table = Table.grid(expand=True, padding=(0, 1))
    stages = state.ordered_stages()
    for _ in stages:
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    names = [
        Text(("→ " if i else "") + STAGE_TITLES.get(st.name, st.name), style="bold")
        for i, st in enumerate(stages)
    ]
    table.add_row(*names)
    table.add_row(*[stage_cell(st, state.ended) for st in stages])
    return table


class RunLoaded(Message):
    """A run's backlog was read in a worker thread; the pane follows it from here."""

    def __init__(self, watch: RunWatch):
        super().__init__()
        self.watch = watch


class TrainPane(Vertical):
    """Pipeline track, live curves, throughput, samples; start / stop / resume / attach."""

    DEFAULT_CSS = """
    TrainPane { padding: 0 1; }
    TrainPane #train-controls { height: 1; margin-bottom: 1; }
    TrainPane #train-controls Select { width: 1fr; min-width: 14; }
    TrainPane #train-controls #train-preset { width: 10; min-width: 10; }
    TrainPane #train-controls Input { width: 6; }
    TrainPane #train-controls Label { padding: 0 1; color: $text-muted; }
    TrainPane #train-controls Button { min-width: 8; margin-left: 1; }
    TrainPane #train-status { height: 1; }
    TrainPane #train-track { height: 2; margin-bottom: 1; }
    TrainPane #train-stats { height: 1; color: $text-muted; }
    TrainPane #train-curves { height: 1fr; min-height: 5; }
    TrainPane #train-curves BraillePlot { width: 1fr; }
    TrainPane #train-plot-b { margin-left: 2; }
    TrainPane #train-samples { height: 6; border-top: solid $primary-background; }
    """

    BINDINGS = [
        Binding("n", "new_run", "New run"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("a", "pick_run", "Attach"),
        Binding("c", "cycle_curves", "Curves"),
    ]

    can_focus = True  # so its keys work right after switching to the tab

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.watch: RunWatch | None = None
        self.trainers = train_proc.Trainers()  # the trainer started here; stop requests
        self.curve_stage: str | None = None  # None: follow the running stage
        self._root = RootWatch()  # runs made or removed: the picker lists them again
        self._run_names: list[str] = []  # the picker's options
        self._last_stats = 0.0
        self._shown: dict[str, object] = {}  # what each part shows now, to skip equal updates
        self._dirty = False  # events arrived since the last draw
        self._drawn_at = 0.0

    def compose(self) -> ComposeResult:
        with Horizontal(id="train-controls"):
            yield Select([], prompt="attach to a run", id="train-run", compact=True,
                         type_to_search=False)
            yield Label("preset")
            yield Select([(p, p) for p in PRESETS], value="tiny", allow_blank=False,
                         id="train-preset", compact=True, type_to_search=False)
            yield Label("seed")
            yield Input("0", placeholder="seed", type="integer", id="train-seed", compact=True)
            yield Button("New", id="train-new", compact=True)
            yield Button("Stop", id="train-stop", compact=True)
            yield Button("Resume", id="train-resume", compact=True)
        yield Static("Pick a run to follow, or start one with New.", id="train-status")
        yield Static(id="train-track")
        yield Static(id="train-stats")
        with Horizontal(id="train-curves"):
            yield BraillePlot(id="train-plot-a")
            yield BraillePlot(id="train-plot-b")
        with VerticalScroll(id="train-samples"):
            yield Static("", id="train-samples-text")

    @property
    def child(self):
        """The trainer process started here (subprocess.Popen), if any."""
        return self.trainers.child

    @property
    def child_dir(self) -> Path | None:
        return self.trainers.child_dir

    def on_mount(self) -> None:
        self._refresh_runs(force=True)
        # open on the app's run (else a finished one), its history read at once
        run = open_run(list_runs(), getattr(self.app, "run_name", None))
        if run is not None and self._has_option(run.name):
            self.query_one("#train-run", Select).value = run.name
        self._draw()
        self.set_interval(POLL_S, self._tick)

    def on_show(self) -> None:
        focused = self.app.focused
        if focused is None or self not in focused.ancestors_with_self:
            self.focus()

    # ---- following -----------------------------------------------------------------------

    def attach(self, run_dir: Path) -> None:
        """Follow ``run_dir``: its history is read in a worker, then new lines on each tick."""
        self.watch = None
        self.curve_stage = None
        self.trainers.stop_requests = 0
        self._shown.clear()
        self._set("#train-status", f"reading {run_dir.name} …")
        self._set("#train-track", "")
        self._set("#train-stats", "")
        self._load(run_dir)

    @work(thread=True, exclusive=True, group="train-load")
    def _load(self, run_dir: Path) -> None:
        watch = RunWatch(run_dir)
        watch.refresh(child_alive=self.trainers.child_alive(run_dir))
        self.post_message(RunLoaded(watch))

    def on_run_loaded(self, message: RunLoaded) -> None:
        if self.selected_dir() == message.watch.run_dir:
            self.watch = message.watch
            self._draw()

    def _tick(self) -> None:
        failed = self.trainers.reap()
        if failed:
            self.notify(failed, severity="error", timeout=10)
        self._refresh_runs()
        if self.watch is None:
            return
        if self.watch.refresh(1 << 20, self.trainers.child_alive(self.watch.run_dir)):
            self._dirty = True
        now = time.monotonic()
        if self._dirty and now - self._drawn_at >= DRAW_MIN_S:
            self._draw()
        elif self.watch.state.alive and now - self._last_stats >= 1.0:
            self._draw_stats()  # elapsed and memory move even between events

    def _refresh_runs(self, force: bool = False) -> None:
        """Keep the run picker in step with checkpoints/ (one stat per tick)."""
        if not self._root.changed() and not force:
            return
        root = checkpoints_root()
        options = [(run_label(r), r.name) for r in list_runs(root)]
        if self.child_dir is not None and self.child_dir.parent == root:
            if all(v != self.child_dir.name for _, v in options):  # started, no events yet
                options.append((self.child_dir.name, self.child_dir.name))
        self._run_names = [v for _, v in options]
        with self.prevent(Select.Changed):
            refill(self.query_one("#train-run", Select), options)

    def _has_option(self, name: str) -> bool:
        return name in self._run_names

    def selected_dir(self) -> Path | None:
        value = self.query_one("#train-run", Select).value
        return None if value is Select.NULL else checkpoints_root() / str(value)

    @on(Select.Changed, "#train-run")
    def _run_picked(self, event: Select.Changed) -> None:
        run_dir = self.selected_dir()
        if run_dir is not None and (self.watch is None or self.watch.run_dir != run_dir):
            self.attach(run_dir)
            self.focus()  # back to the pane: its keys (c, s, r, …) work at once

    # ---- drawing -------------------------------------------------------------------------

    def _draw(self) -> None:
        """Update the parts whose text changed (called at most every DRAW_MIN_S by the tick)."""
        watch = self.watch
        if watch is None:
            plots = self.query(BraillePlot)
            plots[0].set_curves("pick a run to follow (a) or start one (n)", [])
            plots[1].display = False
            return
        state = watch.state
        self._dirty, self._drawn_at = False, time.monotonic()
        self._set("#train-status", self._status_text(watch))
        cells = [(st.name, stage_cell(st, state.ended)) for st in state.ordered_stages()]
        key = tuple((name, cell.plain) for name, cell in cells)
        if key != self._shown.get("#train-track"):
            self._shown["#train-track"] = key
            self.query_one("#train-track", Static).update(track_table(state), layout=False)
        self._draw_stats()
        samples_key = (len(state.samples), id(state.samples[-1]) if state.samples else None)
        if samples_key != self._shown.get("samples"):
            self._shown["samples"] = samples_key
            self._draw_samples(state)
        self._draw_curves(state)

    def _set(self, selector: str, content: Text | str) -> None:
        """Static.update only when the text differs (an update costs a repaint)."""
        plain = content.plain if isinstance(content, Text) else content
        if self._shown.get(selector) != plain:
            self._shown[selector] = plain
            self.query_one(selector, Static).update(content, layout=False)  # fixed height

    def _status_text(self, watch: RunWatch) -> Text:
        state = watch.state
        text = Text(watch.run_dir.name, style="bold")
        if state.preset or state.seed is not None:
            text.append(f"  {state.preset or '—'} · seed {fmt_num(state.seed)}", style="dim")
        text.append("  ")
        if state.n_events == 0:
            text.append(f"no events yet in {watch.follower.path}", style="yellow")
            if not state.alive:
                text.append(" — start it with New or `deepdive train`", style="dim")
        elif state.error:
            text.append(f"failed: {state.error}", style="bold red")
            if state.last_checkpoint:
                text.append(f" (last checkpoint: {state.last_checkpoint})")
        elif state.unexpected_stop():
            text.append(state.unexpected_stop() or "", style="bold magenta")
        elif state.end_status == "stopped":
            text.append(state.end_reason or "stopped (saved)", style="magenta")
            text.append(" — Resume (r) continues it", style="dim")
        elif state.end_status:
            text.append("finished", style="green")
        elif state.alive:
            pid = f" (pid {state.pid})" if state.pid else ""
            text.append(f"training{pid}", style="yellow")
        if watch.partial and not state.alive:
            text.append("  · incomplete last line ignored", style="dim")
        if watch.bad_lines:
            text.append(f"  · {watch.bad_lines} unreadable line(s) skipped", style="dim")
        return text

    def _draw_stats(self) -> None:
        self._last_stats = time.monotonic()
        if self.watch is None:
            return
        state = self.watch.state
        pid = state.pid if state.alive else None
        rss = train_proc.rss_bytes(pid) if pid else None
        mem = f"{fmt_bytes(rss)} trainer" if rss else f"{fmt_bytes(train_proc.rss_bytes())} app"
        parts = [*stats_parts(state), f"mem {mem}"]
        self._set("#train-stats", " · ".join(parts))

    def curves_stage(self, state: RunState) -> str | None:
        """The stage whose curves are shown: the chosen one, else running, else latest with data."""
        with_data = [s.name for s in state.ordered_stages() if self._stage_series(state, s.name)]
        if self.curve_stage in with_data:
            return self.curve_stage
        running = state.running_stage
        if running and running.name in with_data:
            return running.name
        if state.current in with_data:
            return state.current
        return with_data[-1] if with_data else None

    @staticmethod
    def _stage_series(state: RunState, stage: str) -> list[str]:
        return [name for (s, name) in state.series if s == stage]

    def _draw_curves(self, state: RunState) -> None:
        stage = self.curves_stage(state)
        plots = self.query(BraillePlot)
        if stage is None:
            plots[0].set_curves("no curves yet", [])
            plots[1].display = False
            return
        specs = PLOTS.get(stage)
        if specs is None:  # a stage without a known layout: everything it logged, one plot
            names = self._stage_series(state, stage)
            specs = [("", [(n, n, COLORS[i % len(COLORS)]) for i, n in enumerate(names)])]
        title = STAGE_TITLES.get(stage, stage)
        for i, plot in enumerate(plots):
            if i >= len(specs):
                plot.display = False
                continue
            plot.display = True
            name, wanted = specs[i]
            curves = []
            for key, label, color in wanted:
                series = state.curve(stage, key)
                if series is not None:
                    xs, ys = series.points()
                    curves.append(Curve(label, xs, ys, color))
            plot.set_curves(title, curves, y_label=name or "value", x_label="step")

    def _draw_samples(self, state: RunState) -> None:
        text = Text()
        if not state.samples:
            text.append("samples the trainer logs appear here", style="dim")
        for s in reversed(state.samples):
            stage = STAGE_TITLES.get(s.stage or "", s.stage or "—")
            text.append(f"[{stage} step {fmt_num(s.step)}] ", style="bold cyan")
            text.append(s.prompt.replace("\n", "⏎ "), style="dim")
            text.append(" → ")
            text.append(s.text.replace("\n", "⏎ ") + "\n")
        self.query_one("#train-samples-text", Static).update(text)

    # ---- controls ------------------------------------------------------------------------

    @on(Button.Pressed, "#train-new")
    def action_new_run(self) -> None:
        if refused(self, "starting training"):
            return
        preset = str(self.query_one("#train-preset", Select).value)
        seed_text = self.query_one("#train-seed", Input).value.strip() or "0"
        try:
            seed = int(seed_text)
        except ValueError:
            self.notify(f"seed must be a whole number, not {seed_text!r}", severity="error")
            return
        if self.trainers.child_alive():
            self.notify("a trainer started here is still running; stop it first",
                        severity="warning")
            return
        root = checkpoints_root()
        try:
            seconds, how = estimate_run_s(preset, root)
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            return
        question = (f"Train a new run of the {preset} preset (seed {seed})?\n\n"
                    f"About {fmt_duration(seconds)} of training: {how}. It runs in its own "
                    "process; s asks it to save and stop.")

        def answer(yes: bool | None) -> None:
            if not yes:
                self.notify("no run started", timeout=2)
                return
            self._start(lambda: self.trainers.start_new(root, preset, seed))

        self.app.push_screen(Confirm(question, yes="Start training", title="New run"), answer)

    @on(Button.Pressed, "#train-resume")
    def action_resume(self) -> None:
        if refused(self, "resuming training"):
            return
        run_dir = self.selected_dir()
        if run_dir is None:
            self.notify("pick a run to resume first", severity="warning")
            return
        problem = self.trainers.resume_problem(run_dir, self.watch.state if self.watch else None)
        if problem:
            self.notify(problem, severity="warning")
            return
        self._start(lambda: self.trainers.resume(run_dir))

    def _start(self, start) -> None:
        """Run ``start`` (it starts the trainer and returns its run folder), then follow it."""
        try:
            run_dir = start()
        except OSError as exc:
            self.notify(f"could not start the trainer: {exc}", severity="error")
            return
        self.notify(f"training {run_dir.name} (log: {run_dir / train_proc.TRAIN_LOG_FILE})")
        self._refresh_runs(force=True)
        select = self.query_one("#train-run", Select)
        with self.prevent(Select.Changed):
            select.value = run_dir.name
        self.attach(run_dir)

    @on(Button.Pressed, "#train-stop")
    def action_stop(self) -> None:
        if refused(self, "stopping training"):
            return
        run_dir = self.selected_dir()
        if run_dir is None:
            self.notify("no run selected", severity="warning")
            return
        pid, mine, hard = self.trainers.stop_target(run_dir)
        if pid is None:
            self.notify(f"no trainer is running {run_dir.name}", severity="warning")
            return
        if mine and not hard:
            self._signal(pid, hard)  # ours, and it saves first: no need to ask
            return
        if hard:
            question = (f"Force trainer {pid} ({run_dir.name}) to end now? It was already asked "
                        "to stop; ended now it may lose the steps since its last checkpoint.")
        else:
            question = (f"Trainer {pid} for {run_dir.name} was started elsewhere (another "
                        "terminal, tmux, torchrun). Ask it to save a checkpoint and stop?")
        self.app.push_screen(
            Confirm(question, yes="Force it" if hard else "Stop it", title="Stop training"),
            lambda yes: self._signal(pid, hard) if yes else None)

    def _signal(self, pid: int, hard: bool) -> None:
        try:
            self.trainers.stop(pid, hard)
        except OSError as exc:
            self.notify(f"could not signal pid {pid}: {exc}", severity="error")
            return
        how = "terminating" if hard else "asked to stop; it saves first (s again forces it)"
        self.notify(f"trainer {pid} {how}")

    def action_pick_run(self) -> None:
        select = self.query_one("#train-run", Select)
        select.focus()
        select.action_show_overlay()

    def action_cycle_curves(self) -> None:
        if self.watch is None:
            return
        state = self.watch.state
        with_data = [s.name for s in state.ordered_stages() if self._stage_series(state, s.name)]
        if not with_data:
            return
        shown = self.curves_stage(state)
        i = with_data.index(shown) if shown in with_data else -1
        self.curve_stage = with_data[(i + 1) % len(with_data)]
        self._draw_curves(state)
