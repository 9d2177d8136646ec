"""``deepdive train``: run the pipeline (tokenizer -> pretrain -> sft -> rl -> control -> eval)
into a run folder, with a live progress display for people who do not open the app.

Data-parallel: ``torchrun --nproc_per_node=N -m deepdive train --name RUN ...`` (torchrun
runs the ``deepdive`` command once per process; rank 0 draws the display and writes the run
folder). Spell the run ``--name`` there: torchrun's own parser takes ``--run`` as an ambiguous
abbreviation of its ``--run-path``.
"""

from __future__ import annotations

import time
from typing import Any

import typer

STAGE_HELP = "comma-separated subset of tokenizer,pretrain,sft,rl,control,eval (default: all)"


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def train(
    preset: str = typer.Option(None, help="micro (seconds, for tests) | tiny (CPU default) | "
                               "small (GPU); default tiny, or what --resume's run was made with"),
    run: str = typer.Option(None, "--run", "--name", help="run name under checkpoints/ or a "
                            "path (default: the preset's name); --name is the same, for torchrun"),
    stages: str = typer.Option(None, help=STAGE_HELP),
    resume: bool = typer.Option(False, "--resume", help="continue a stopped run: skip finished "
                                "stages, resume the unfinished one from its last checkpoint"),
    device: str = typer.Option(None, help="cpu | cuda | cuda:N | mps (default: best available)"),
    seed: int = typer.Option(0, help="world and training seed (a new run only)"),
    quiet: bool = typer.Option(False, "--quiet", help="no live display; one line per stage"),
) -> None:
    """Train a model through pretraining, SFT and RL on the embedded world; write a run folder."""
    from engine.run import RunFolder, RunLockedError, resolve_run
    from engine.train.distributed import env_dist_info
    from engine.train.loop import TrainingError, TrainingStopped, install_stop_handlers
    from engine.train.pipeline import PipelineError, parse_stages
    from engine.train.pipeline import train as run_pipeline

    try:
        parse_stages(stages)
    except PipelineError as e:
        _fail(str(e))
    run_dir = resolve_run(run or preset or "tiny")
    main = env_dist_info().is_main
    display = TrainDisplay(run_dir.name, live=main and not quiet)
    restore_signals = install_stop_handlers()
    try:
        with display:
            results = run_pipeline(run_dir, preset=preset, stages=stages, resume=resume,
                                   device=device, seed=seed, on_event=display.on_event)
    except TrainingStopped as e:
        display.console.print(f"[yellow]stopped:[/] {e}")
        raise typer.Exit(130) from None
    except (PipelineError, RunLockedError, TrainingError, ValueError) as e:
        _fail(str(e))
    except FileNotFoundError as e:
        _fail(f"missing file: {e}")
    finally:
        restore_signals()
    if main:
        report = results.get("eval")
        display.console.print(f"[green]done[/] -> {run_dir}"
                              + (f"  (report: {RunFolder(run_dir).report()})" if report else ""))


def _fail(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


class TrainDisplay:
    """Follows the pipeline's events: a live panel on a terminal, plain lines otherwise."""

    def __init__(self, run_name: str, live: bool = True):
        from rich.console import Console

        self.console = Console()
        self.run_name = run_name
        self.enabled = live
        self.live_mode = live and self.console.is_terminal
        self.state: dict[str, Any] = {"stage": "-", "step": 0, "total": 0, "loss": None,
                                      "tok_s": None, "sample": "", "t_stage": time.time(),
                                      "step0": 0, "done": [], "extra": ""}
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
        s, kind = self.state, e["type"]
        if kind == "stage_start":
            s.update(stage=e["stage"], step=e.get("step", 0), step0=e.get("step", 0),
                     total=e.get("total_steps", 0), loss=None, tok_s=None, extra="",
                     t_stage=time.time())
        elif kind == "step":
            s.update(step=e.get("step", 0), total=e.get("total_steps", s["total"]),
                     loss=e.get("loss"), tok_s=e.get("tok_s"))
            if "reward" in e:
                s["extra"] = f"reward {e['reward']:.2f}  resp_len {e.get('resp_len', 0):.0f}"
        elif kind == "eval":
            figures = {k: v for k, v in e.items() if k not in ("t", "type", "stage", "step")}
            s["eval"] = "  ".join(f"{k} {v:.3f}" for k, v in figures.items()
                                  if isinstance(v, float))[:120]
        elif kind == "sample":
            s["sample"] = f"{e.get('prompt', '')!r} -> {e.get('text', '')!r}"[:200]
        elif kind == "stage_end":
            summary = e.get("summary", {})
            line = f"{e['stage']:<9} done in {summary.get('elapsed_s', 0):.1f}s"
            s["done"].append(line)
            s["step"] = s["total"] = max(int(e.get("step") or 0), 1)
            if not self.live_mode:
                self.console.print(line, highlight=False)
        elif kind == "error":
            self.console.print(f"[red]{e.get('message')}[/]")
        if self._live is not None:
            self._live.update(self.render())

    def render(self):
        from rich.panel import Panel
        from rich.table import Table

        s = self.state
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        for line in s["done"]:
            t.add_row("✓", line)
        total = max(int(s["total"] or 0), 1)
        frac = min(s["step"] / total, 1.0)
        bar = "█" * int(frac * 30) + "░" * (30 - int(frac * 30))
        t.add_row("stage", f"{s['stage']}  {bar} {s['step']}/{s['total']}  ETA {self._eta()}")
        loss = "-" if s["loss"] is None else f"{s['loss']:.4f}"
        tok_s = "-" if s["tok_s"] is None else f"{s['tok_s']:,.0f}"
        t.add_row("loss", f"{loss}   tok/s {tok_s}   {s['extra']}")
        if s.get("eval"):
            t.add_row("eval", s["eval"])
        if s["sample"]:
            t.add_row("sample", s["sample"])
        return Panel(t, title=f"deepdive train · {self.run_name}", border_style="cyan")

    def _eta(self) -> str:
        s = self.state
        done = s["step"] - s["step0"]
        if done <= 0 or not s["total"]:
            return "-"
        left = (time.time() - s["t_stage"]) / done * (s["total"] - s["step"])
        return f"{int(left // 60)}m{int(left % 60):02d}s"
