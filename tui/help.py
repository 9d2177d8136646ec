"""The help screen: the app's keys, then each pane's keys and what it shows.

Pane keys come from each pane class's BINDINGS and its text from a module- or class-level
`HELP` string when the pane has one, so the screen never drifts from the code.
"""

from __future__ import annotations

import sys

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

APP_KEYS = """\
| Key | Does |
|---|---|
| F2–F6 or alt+1–5 | Tokens, Sample, Train, Compare, Report |
| F1 | this help (Esc or q closes it) |
| ctrl+p | command palette: every action below, and themes |
| ctrl+t | next colour theme (in Sample it switches chat/raw; the palette has themes too) |
| ctrl+s | save an SVG screenshot in the current folder |
| tab / shift+tab | move between inputs |
| ctrl+q | quit |
"""

ABOUT = {
    "tokens": "How text becomes tokens under OpenAI's encodings and your runs' tokenizers.",
    "sample": "A model writes token by token, with each step's most likely alternatives.",
    "train": "A training run's loss, learning rate and speed, live, per stage.",
    "compare": "One prompt, three models (base, SFT, RL) answering side by side.",
    "report": "What each stage of a run can and cannot do, measured on held-out problems.",
}

SLOW_LINKS = """\
## Slow links and projectors

`NO_COLOR=1 deepdive` runs in monochrome. `deepdive demo --fps 10 --no-animation` suits a slow
SSH link. Below 60×20 the app asks for a larger terminal.
"""


def _key_label(key: str) -> str:
    return " / ".join(key.split(","))


def help_markdown() -> str:
    from tui.app import PANES, pane_bindings, pane_class

    parts = ["# deepdive\n", APP_KEYS]
    for i, (key, title, _) in enumerate(PANES):
        pane_cls = pane_class(key)
        module = sys.modules.get(pane_cls.__module__)
        text = getattr(pane_cls, "HELP", None) or getattr(module, "HELP", None) or ABOUT[key]
        parts.append(f"\n## {title} (F{i + 2})\n\n{text.strip()}\n")
        bindings = pane_bindings(pane_cls)
        if bindings:
            parts.append("\n| Key | Does |\n|---|---|\n")
            parts += [f"| {_key_label(b.key)} | {b.description} |\n" for b in bindings]
    parts.append("\n" + SLOW_LINKS)
    return "".join(parts)


class HelpScreen(ModalScreen):
    BINDINGS = [
        Binding("escape,q,f1", "dismiss", "Close"),
        Binding("up", "scroll(-1)", show=False),
        Binding("down", "scroll(1)", show=False),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 100%; max-width: 100; height: 100%;
        border: round $primary; background: $surface;
    }
    HelpScreen Markdown { margin: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "help · esc closes"
            yield Markdown(help_markdown())

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_scroll(self, lines: int) -> None:
        self.query_one(VerticalScroll).scroll_relative(y=lines, animate=False)
