"""The ``deepdive`` command. With no subcommand it opens the app.

Each group of subcommands lives in its own ``cmd_*.py`` module with a ``register(app)``;
engine and torch imports happen inside the commands so ``deepdive --help`` stays fast.
"""

from __future__ import annotations

import typer

from tui import cmd_demo, cmd_eval, cmd_model, cmd_tokens, cmd_train

app = typer.Typer(
    name="deepdive",
    help="A terminal explorer of how a chat LLM is made. Run with no command to open the app.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def root(ctx: typer.Context) -> None:
    """Open the app when no command is given."""
    if ctx.invoked_subcommand is None:
        from tui.app import DeepdiveApp

        DeepdiveApp().run()


for module in (cmd_tokens, cmd_model, cmd_train, cmd_eval, cmd_demo):
    module.register(app)


def main() -> None:
    app(prog_name="deepdive")


if __name__ == "__main__":  # torchrun ... -m tui.cli train ...
    main()
