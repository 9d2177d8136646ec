"""The ``deepdive`` command. With no subcommand it opens the app.

Each group of subcommands lives in its own ``deepdive/commands/*.py`` module with a
``register(app)``;
engine and torch imports happen inside the commands so ``deepdive --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup
from typer.models import DefaultPlaceholder

from deepdive.commands import data, demo, model, tokens, train
from deepdive.commands import eval as eval_cmd
from deepdive.commands.params import path_like

DEFAULT_RUN = "tiny"
# the app's panes (tui/pane_registry.py's PANE_KEYS; not imported here: --help must not import
# textual; tests/test_cli_root.py checks the two agree)
PANES = ("tokens", "sample", "train", "compare", "report")
Pane = Literal["tokens", "sample", "train", "compare", "report"]


class _TidyHelp:
    """Help without oddities: flags show no ``<bool>`` type, arguments show as ``PROMPT``
    (not ``{prompt}``)."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for p in params:
            if getattr(p, "is_flag", False) and p.metavar is None:
                p.metavar = ""  # typer's help prints a flag's metavar in place of "<bool>"
            elif isinstance(p, TyperArgument) and p.metavar is None and p.name:
                p.metavar = p.name.upper()
        return params

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        # typer writes a required argument as {NAME} in the usage line: plain NAME here
        pieces = super().collect_usage_pieces(ctx)  # type: ignore[misc]
        return [p[1:].replace("}", "", 1) if p.startswith("{") else p for p in pieces]


class TidyCommand(_TidyHelp, TyperCommand):
    pass


class TidyGroup(_TidyHelp, TyperGroup):
    pass


def tidy_help(typer_app: typer.Typer) -> None:
    """Give every command and group of ``typer_app`` (and of its sub-apps) tidy help."""

    def plain(cls: object, base: type) -> bool:  # not chosen by the command's author
        return cls is None or cls is base or isinstance(cls, DefaultPlaceholder)

    if plain(typer_app.info.cls, TyperGroup):
        typer_app.info.cls = TidyGroup
    for command in typer_app.registered_commands:
        if plain(command.cls, TyperCommand):
            command.cls = TidyCommand
    for group in typer_app.registered_groups:
        if plain(group.cls, TyperGroup):
            group.cls = TidyGroup
        if group.typer_instance is not None:
            tidy_help(group.typer_instance)


app = typer.Typer(
    name="deepdive",
    help="A terminal explorer of how a chat LLM is made. Run with no command to open the app.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # `code` in help shows as code, not as backticks
)


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def app_run(run: str | None) -> str | None:
    """The run the app opens on: `run` if it is one (else exit 2), by default the demo run
    when it is there."""
    from engine.api import list_runs, resolve_run

    if run is None:
        return DEFAULT_RUN if resolve_run(DEFAULT_RUN).is_dir() else None
    run_dir = resolve_run(run)
    if not any(r.path == run_dir for r in list_runs(run_dir.parent)):
        known = ", ".join(r.name for r in list_runs()) or "none"
        why = "no such folder" if not run_dir.is_dir() else "no model or tokenizer in it"
        raise fail(f"--run {run!r}: {run_dir} is not a run ({why}). Runs: {known}. "
                   "List them with: deepdive runs")
    return run


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    run: str | None = typer.Option(None, "--run", help=f"Run the panes open on (name under "
                                   f"checkpoints/ or path; default {DEFAULT_RUN!r}).",
                                   callback=path_like),
    pane: Annotated[Pane, typer.Option("--pane", help="Pane to open on.")] = "tokens",
    fps: int | None = typer.Option(None, "--fps", min=1, max=120,
                                   help="Frames per second at most (lower it on slow SSH "
                                        "links)."),
    no_animation: bool = typer.Option(False, "--no-animation",
                                      help="No animations (slow links, projectors)."),
) -> None:
    """Open the app when no command is given."""
    if ctx.invoked_subcommand is not None:
        given = [name for name in ("run", "pane", "fps", "no_animation")
                 if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"]
        if given:
            opts = ", ".join("--" + g.replace("_", "-") for g in given)
            raise fail(f"{opts} open the app: give {'it' if len(given) == 1 else 'them'} "
                       f"without a command (deepdive {ctx.invoked_subcommand} has its own "
                       "options; see its --help)")
        return
    demo.make_app(app_run(run), fps, no_animation, start_tab=pane).run()


for module in (tokens, model, train, eval_cmd, demo, data):
    module.register(app)
tidy_help(app)


def main() -> None:
    app(prog_name="deepdive")


if __name__ == "__main__":  # python -m deepdive.cli (python -m deepdive runs __main__.py)
    main()
