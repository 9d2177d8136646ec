"""``deepdive train``: run the pipeline (tokenizer -> pretrain -> sft -> rl -> control -> eval)
into a run folder, with a live progress display for people who do not open the app.

Data-parallel: ``torchrun --nproc_per_node=N -m deepdive train --name RUN ...`` (torchrun
runs the ``deepdive`` command once per process; rank 0 draws the display and writes the run
folder). Spell the run ``--name`` there: torchrun's own parser takes ``--run`` as an ambiguous
abbreviation of its ``--run-path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from deepdive.commands.params import path_like

OnBad = Literal["skip", "refuse"]

STAGE_HELP = "comma-separated subset of tokenizer,pretrain,sft,rl,control,eval (default: all)"


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def train(
    preset: str = typer.Option(None, help="micro (seconds, for tests) | tiny (CPU default) | "
                               "small | medium (GPU); default tiny, or what --resume's run "
                               "was made with"),
    run: str = typer.Option(None, "--run", "--name", help="run name under checkpoints/ or a "
                            "path (default: the preset's name); --name is the same, for torchrun",
                            callback=path_like),
    stages: str = typer.Option(None, help=STAGE_HELP),
    resume: bool = typer.Option(False, "--resume", help="continue a stopped run: skip finished "
                                "stages, resume the unfinished one from its last checkpoint"),
    device: str = typer.Option(None, help="cpu | cuda | cuda:N | mps (default: best available)"),
    seed: int = typer.Option(0, help="world and training seed (a new run only)"),
    rl_families: str = typer.Option(None, help="what RL practises on, comma-separated: arith,"
                                    "count_letters,decimal_cmp (a new run only; default: the "
                                    "preset's); the report card measures transfer to the rest"),
    pretrain_data: Annotated[Path | None, typer.Option(
        "--pretrain-data", callback=path_like, help="your .txt/.jsonl/.parquet documents, "
        "pretrained on with the world's (a new run only)")] = None,
    sft_data: Annotated[Path | None, typer.Option(
        "--sft-data", callback=path_like, help="your 'messages' .jsonl conversations, added "
        "to the world's SFT rows (a new run only)")] = None,
    rl_data: Annotated[Path | None, typer.Option(
        "--rl-data", callback=path_like, help="your GSM8K-style .jsonl problems ('#### 42'), "
        "added to RL's practice problems (a new run only)")] = None,
    on_bad: Annotated[OnBad, typer.Option(
        "--on-bad", help="a bad row in those files: skip it, or refuse (exit 2 naming "
        "path:line)")] = "skip",
    from_run: Annotated[str | None, typer.Option(
        "--from", callback=path_like, help="fine-tune another run's base model (one made by "
        "`deepdive import gpt2`, or any run): its weights and tokenizer, with the chat tokens "
        "added; stages after pretraining only (default sft,rl,control,eval), a new --run "
        "(default: SOURCE-chat)")] = None,
    micro_batch: Annotated[int | None, typer.Option(
        "--micro-batch", min=1, help="at most N rows in one forward/backward pass of "
        "pretraining and SFT (gradient accumulation: the same update in less memory); also "
        "with --resume, after running out of memory")] = None,
    quiet: bool = typer.Option(False, "--quiet", help="no live display; one line per stage"),
) -> None:
    """Train a model through pretraining, SFT and RL on the embedded world; write a run folder."""
    from engine.api import (
        CheckpointError,
        PipelineError,
        RunFolder,
        RunLockedError,
        TrainingError,
        TrainingStopped,
        env_dist_info,
        get_preset,
        install_stop_handlers,
        parse_rl_families,
        parse_stages,
        resolve_run,
    )
    from engine.api import train as run_pipeline

    try:
        parse_stages(stages)
        parse_rl_families(rl_families)
        if preset is not None:  # before its name is used as the run's (a bad one is no path)
            get_preset(preset)
    except (PipelineError, ValueError) as e:
        _fail(str(e))
    if run is None and from_run is not None:  # never the source itself, nor the demo run
        run = f"{resolve_run(from_run).resolve().name}-chat"
    run_dir = resolve_run(run or preset or "tiny")
    main = env_dist_info().is_main
    display = TrainDisplay(run_dir.name, live=not quiet, enabled=main)
    restore_signals = install_stop_handlers()
    try:
        with display:
            results = run_pipeline(run_dir, preset=preset, stages=stages, resume=resume,
                                   device=device, seed=seed, on_event=display.on_event,
                                   rl_families=rl_families, pretrain_data=pretrain_data,
                                   sft_data=sft_data, rl_data=rl_data, on_bad=on_bad,
                                   from_run=from_run, micro_batch=micro_batch)
    except TrainingStopped as e:
        display.console.print(f"[yellow]stopped:[/] {e}")
        raise typer.Exit(130) from None
    except (PipelineError, RunLockedError, TrainingError, ValueError) as e:
        _fail(str(e))
    except CheckpointError as e:  # a damaged checkpoint is named, never deleted
        _fail(f"{e}\n(move that folder away to retrain the stage, or restore it)")
    except FileNotFoundError as e:
        _fail(f"missing file: {e}")
    except OSError as e:  # read-only folder, disk full: what and where, not a traceback
        _fail(f"cannot write {e.filename or run_dir}: {e.strerror or e}")
    finally:
        restore_signals()
    if main:
        report = results.get("eval")
        display.console.print(f"[green]done[/] -> {run_dir}"
                              + (f"  (report: {RunFolder(run_dir).report()})" if report else ""))


def _fail(message: str) -> None:
    from rich.console import Console

    # soft_wrap: a path:line is never broken across lines (it is copied into an editor)
    Console(stderr=True).print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


class TrainDisplay:
    """Follows the pipeline's events: a live panel on a terminal, plain lines otherwise.

    It folds them with the reducer the Train pane uses (``engine.progress.state.RunState``) and
    says them with the same words (``engine.progress.text``): the same step, ETA and figures."""

    def __init__(self, run_name: str, live: bool = True, console=None, enabled: bool = True):
        from rich.console import Console

        from engine.api import RunState

        self.console = console or Console()
        self.run_name = run_name
        self.enabled = enabled  # False on a DDP rank other than 0: one process reports
        self.live_mode = enabled and live and self.console.is_terminal
        self.state = RunState()
        self.state.alive = True  # this process is the trainer
        self._live = None

    def __enter__(self) -> TrainDisplay:
        if self.live_mode:
            from rich.live import Live

            self._live = Live(self.render(), console=self.console, refresh_per_second=4,
                              transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(*exc)

    def on_event(self, e: dict) -> None:
        if not self.enabled:
            return
        from engine.api import stage_done_line

        self.state.apply(e)
        kind = e.get("type")
        if kind == "stage_end" and not self.live_mode:
            self.console.print(stage_done_line(self.state.stage(e.get("stage"))),
                               highlight=False)
        elif kind == "error":
            self.console.print(f"[red]{e.get('message')}[/]")
        if self._live is not None:
            self._live.update(self.render())

    def stats_line(self, now: float | None = None) -> str:
        """Stage and step, tok/s, MFU, time trained, ETA: the Train pane's stats, word for word."""
        from engine.api import stats_parts

        return " · ".join(stats_parts(self.state, now))

    def figures_line(self) -> str:
        """The current stage's latest loss (and RL's reward and reply length)."""
        from engine.api import fmt_num

        parts = []
        for key, label in (("loss", "loss"), ("reward", "reward"), ("resp_len", "resp_len")):
            value = self.state.latest(key)
            if value is not None or key == "loss":
                parts.append(f"{label} {fmt_num(value)}")
        return "   ".join(parts)

    def render(self):
        from rich.panel import Panel
        from rich.table import Table

        from engine.api import fmt_num, shown_stage, stage_done_line

        state = self.state
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        for st in state.ordered_stages():
            if st.status == "done":
                t.add_row("✓", stage_done_line(st))
        st = shown_stage(state)
        frac = (st.fraction if st else None) or 0.0
        bar = "█" * int(frac * 30) + "░" * (30 - int(frac * 30))
        t.add_row("stage", f"{bar}  {self.stats_line()}")
        t.add_row("now", self.figures_line())
        if state.last_eval:
            t.add_row("eval", "  ".join(f"{k} {fmt_num(v)}" for k, v in state.last_eval.items())
                      [:120])
        if state.samples:
            s = state.samples[-1]
            t.add_row("sample", f"{s.prompt!r} -> {s.text!r}"[:200])
        return Panel(t, title=f"deepdive train · {self.run_name}", border_style="cyan")
