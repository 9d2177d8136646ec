"""``deepdive demo`` (straight into Compare on the tiny run) and ``deepdive serve`` (in a browser).

Nothing heavy is imported here: the demo's first frame must come before torch loads.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import typer

DEMO_RUN = "tiny"
STAGES = ("base", "sft", "rl")


def missing_stages(run_dir: Path) -> list[str]:
    return [s for s in STAGES if not (run_dir / s / "model.safetensors").is_file()]


def deepdive_command() -> list[str]:
    """How to start ``deepdive`` again: the script next to this Python, else the one on PATH."""
    script = Path(sys.executable).with_name("deepdive")
    if script.is_file():
        return [str(script)]
    found = shutil.which("deepdive")
    if found:
        return [found]
    return [sys.executable, "-c", "from tui.cli import main; main()"]


def ensure_run(run: str) -> Path:
    """The run's folder; the demo run is trained first (with progress) if it is missing."""
    from engine.runs import is_run_active, list_runs, resolve_run

    run_dir = resolve_run(run)
    missing = missing_stages(run_dir)
    if not missing:
        return run_dir
    if is_run_active(run_dir):
        typer.echo(f"error: {run_dir} is being trained right now ({', '.join(missing)} not done "
                   "yet); wait for it, or watch it with `deepdive` (Train pane).", err=True)
        raise typer.Exit(2)
    if run != DEMO_RUN:
        known = ", ".join(r.name for r in list_runs() if r.stages) or "none"
        typer.echo(f"error: run {run!r} ({run_dir}) has no {'/'.join(missing)} model. "
                   f"Runs with models: {known}. Without --run the demo uses {DEMO_RUN!r}, "
                   "trained on first use.", err=True)
        raise typer.Exit(2)
    typer.echo(f"The demo run {run!r} is missing ({', '.join(missing)}): training it first "
               f"into {run_dir} (a few minutes on a laptop CPU).", err=True)
    cmd = [*deepdive_command(), "train", "--preset", "tiny", "--run", run]
    code = subprocess.call(cmd)  # its progress goes straight to this terminal
    if code != 0 or missing_stages(run_dir):
        typer.echo(f"error: training the demo run failed (exit {code}); "
                   f"run `{shlex.join(cmd)}` to see why.", err=True)
        raise typer.Exit(2)
    return run_dir


def make_app(run: str, fps: int | None = None, no_animation: bool = False):
    """The app, opened on the Compare pane of `run`, with the slow-link options."""
    import inspect
    import os

    if fps and "textual" not in sys.modules:
        os.environ["TEXTUAL_FPS"] = str(fps)  # textual reads it once, at import
    from tui.app import DeepdiveApp

    accepts = inspect.signature(DeepdiveApp.__init__).parameters
    if "fps" in accepts and "animation" in accepts:  # the app's own slow-link options
        return DeepdiveApp(start_tab="compare", run=run, fps=fps, animation=not no_animation)
    app = DeepdiveApp(start_tab="compare", run=run)
    if no_animation:
        app.animation_level = "none"
    return app


def demo_command(run: str = DEMO_RUN, fps: int | None = None, no_animation: bool = False) -> str:
    """The shell command textual-serve starts for each browser visit."""
    args = [*deepdive_command(), "demo", "--run", run]
    if fps:
        args += ["--fps", str(fps)]
    if no_animation:
        args.append("--no-animation")
    return shlex.join(args)


def build_server(host: str = "127.0.0.1", port: int = 8000, run: str = DEMO_RUN,
                 fps: int | None = None, no_animation: bool = False):
    """A textual-serve Server for the demo (not started). ImportError if textual-serve is absent."""
    from textual_serve.server import Server

    return Server(demo_command(run, fps, no_animation), host=host, port=port,
                  title="deepdive demo")


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        run: str = typer.Option(DEMO_RUN, help="Run to compare (trained first if it is the "
                                               "missing demo run)."),
        fps: int = typer.Option(None, min=1, max=120, help="Frames per second at most "
                                                             "(lower it on slow SSH links)."),
        no_animation: bool = typer.Option(False, "--no-animation",
                                          help="No animations (slow links, projectors)."),
    ) -> None:
        """Open straight into Compare: base vs SFT vs RL answering side by side."""
        ensure_run(run)
        make_app(run, fps, no_animation).run()

    @app.command()
    def serve(
        host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 = everyone "
                                                   "on your network)."),
        port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
        run: str = typer.Option(DEMO_RUN, help="Run the demo compares."),
        fps: int = typer.Option(None, min=1, max=120, help="Frames per second at most."),
        no_animation: bool = typer.Option(False, "--no-animation", help="No animations."),
    ) -> None:
        """Serve the demo in a web browser (textual-serve), e.g. for projecting from a laptop."""
        try:
            server = build_server(host, port, run, fps, no_animation)
        except ImportError:
            typer.echo("error: `deepdive serve` needs textual-serve; install the serve extra: "
                       "pip install 'deepdive[serve]'", err=True)
            raise typer.Exit(2) from None
        ensure_run(run)
        typer.echo(f"deepdive demo at {server.public_url}  (Ctrl+C stops it)")
        server.serve()
