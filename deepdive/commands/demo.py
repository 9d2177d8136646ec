"""``deepdive demo`` (straight into Compare on the tiny run) and ``deepdive serve`` (in a browser).

Nothing heavy is imported here: the demo's first frame must come before torch loads.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import typer

from deepdive.commands.params import path_like
from engine.api import deepdive_command

DEMO_RUN = "tiny"
MAX_SESSIONS = 4  # served sessions at once (each is a process that may load three models)


def missing_stages(run_dir: Path) -> list[str]:
    """The model folders the demo shows (base, sft, rl) that the run has no weights in."""
    from engine.api import MODEL_FOLDERS, RunFolder

    return [s for s in MODEL_FOLDERS if not RunFolder(run_dir).has_model(s)]




def ensure_run(run: str) -> Path:
    """The run's folder; the demo run is trained first (with progress) if it is missing."""
    from engine.api import is_run_active, list_runs, resolve_run

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


def make_app(run: str | None, fps: int | None = None, no_animation: bool = False,
             start_tab: str = "compare", read_only: bool = False):
    """The app, opened on `start_tab` with `run` chosen, with the slow-link options."""
    import os

    if fps and "textual" not in sys.modules:
        os.environ["TEXTUAL_FPS"] = str(fps)  # textual reads it once, at import
    from tui.app import DeepdiveApp

    return DeepdiveApp(start_tab=start_tab, run=run, fps=fps, animation=not no_animation,
                       read_only=read_only)


def demo_argv(run: str = DEMO_RUN, fps: int | None = None, no_animation: bool = False,
              read_only: bool = True) -> list[str]:
    """The command textual-serve starts for each browser visit (no shell in between)."""
    args = [*deepdive_command(), "demo", "--run", run]
    if fps:
        args += ["--fps", str(fps)]
    if no_animation:
        args.append("--no-animation")
    if read_only:
        args.append("--read-only")
    return args


def demo_command(run: str = DEMO_RUN, fps: int | None = None, no_animation: bool = False,
                 read_only: bool = True) -> str:
    """`demo_argv` as one shell-quoted line (what the server prints)."""
    return shlex.join(demo_argv(run, fps, no_animation, read_only))


def build_server(host: str = "127.0.0.1", port: int = 8000, run: str = DEMO_RUN,
                 fps: int | None = None, no_animation: bool = False,
                 max_sessions: int = MAX_SESSIONS, allow_train: bool = False):
    """The demo's server (not started): textual-serve with our session guard (tui/serve_guard).
    ImportError if textual-serve is absent."""
    import textual_serve.server  # noqa: F401 - the ImportError the caller turns into advice

    from tui.serve_guard import GuardedServer

    return GuardedServer(demo_argv(run, fps, no_animation, read_only=not allow_train),
                         max_sessions=max_sessions, host=host, port=port, title="deepdive demo")


def served_session_run(run: str) -> None:
    """In a served session: watch the server (end with it) and never train; a missing run is an
    error (the server checked it before serving)."""
    from tui.serve_session import watch_parent

    watch_parent()
    from engine.api import resolve_run

    missing = missing_stages(resolve_run(run))
    if missing:
        typer.echo(f"error: run {run!r} has no {'/'.join(missing)} model", err=True)
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        run: str = typer.Option(DEMO_RUN, help="Run to compare (trained first if it is the "
                                               "missing demo run).", callback=path_like),
        fps: int = typer.Option(None, min=1, max=120, help="Frames per second at most "
                                                             "(lower it on slow SSH links)."),
        no_animation: bool = typer.Option(False, "--no-animation",
                                          help="No animations (slow links, projectors)."),
        read_only: bool = typer.Option(False, "--read-only",
                                       help="No training started or stopped and no file "
                                            "written (what `deepdive serve` gives viewers)."),
    ) -> None:
        """Open straight into Compare: base vs SFT vs RL answering side by side."""
        from tui.serve_session import served_parent

        if served_parent() is not None:
            served_session_run(run)
        else:
            ensure_run(run)
        make_app(run, fps, no_animation, read_only=read_only).run()

    @app.command()
    def serve(
        host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 = everyone "
                                                   "on your network)."),
        port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
        run: str = typer.Option(DEMO_RUN, help="Run the demo compares.", callback=path_like),
        fps: int = typer.Option(None, min=1, max=120, help="Frames per second at most."),
        no_animation: bool = typer.Option(False, "--no-animation", help="No animations."),
        max_sessions: int = typer.Option(MAX_SESSIONS, "--max-sessions", min=1, max=64,
                                         help="Browser sessions at once; one more visitor is "
                                              "told the server is full."),
        allow_train: bool = typer.Option(False, "--allow-train",
                                         help="Let viewers start and stop training (sessions "
                                              "are read-only without it)."),
    ) -> None:
        """Serve the demo in a web browser (textual-serve), e.g. for projecting from a laptop.

        Each browser tab gets its own session process, which ends when the tab's connection
        does (or the server does). Sessions are read-only unless you pass --allow-train.
        """
        try:
            server = build_server(host, port, run, fps, no_animation, max_sessions, allow_train)
        except ImportError:
            typer.echo("error: `deepdive serve` needs textual-serve; install the serve extra: "
                       "pip install 'deepdive[serve]'", err=True)
            raise typer.Exit(2) from None
        ensure_run(run)
        mode = "viewers may train" if allow_train else "read-only"
        typer.echo(f"deepdive demo at {server.public_url}  ({mode}, at most {max_sessions} "
                   "sessions; Ctrl+C stops it)")
        server.serve()
