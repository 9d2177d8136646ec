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

from tui.pane_registry import PANES, bindings_of, pane_bindings, pane_class

APP_KEYS = """\
| Key | Does |
|---|---|
| F2–F6 or alt+1–5 | Tokens, Sample, Train, Compare, Report |
| F1 | this help (Esc or q closes it) |
| ctrl+p | command palette: every action below, copy, export, themes |
| ctrl+s | save an SVG screenshot into the export folder |
| tab / shift+tab | move between inputs |
| ctrl+q | quit |

Screenshots and exports go to one folder: `$DEEPDIVE_EXPORT_DIR`, else `~/deepdive-exports`
(never the current folder). Copy puts text on the clipboard through the terminal (OSC 52,
works over SSH where the terminal allows it).
"""

# One key, one verb, in every pane. Panes bind these keys only for these verbs; a pane that
# has no such verb leaves the key unbound. (key, verb, what it does in each pane)
KEY_TABLE: list[tuple[str, str, str]] = [
    ("ctrl+g", "go", "run the model on the prompt: Sample generates, Compare runs the columns"),
    ("ctrl+r", "re-roll", "the same again with the next seed (Sample, Compare)"),
    ("ctrl+n", "next", "one more: Sample draws the next token (step mode), Tokens the next "
     "example"),
    ("ctrl+t", "chat ⇄ raw", "a conversation in the chat format, or a plain document "
     "(Tokens, Sample; Compare: the base model answers a few-shot document)"),
    ("ctrl+f", "find", "open the picker of what to look at: Tokens' encoding, Sample's model"),
    ("ctrl+o", "side by side", "a second column beside the first (Tokens: a second encoding)"),
    ("ctrl+l", "ids", "label every token with its id (Tokens)"),
    ("ctrl+c", "copy", "copy what is selected (token ids, the sample's text); in a text box, "
     "its selected text"),
    ("escape", "stop / clear", "stop a generation; when none runs, clear the selection (Sample: "
     "then start a new conversation)"),
    ("ctrl+s", "screenshot", "an SVG of the screen into the export folder (everywhere)"),
    ("ctrl+y", "export", "the pane's session as Markdown + JSON into the export folder "
     "(Compare, Report)"),
    ("ctrl+b", "world", "browse the run's world: who is known, held out, unknown (Compare)"),
    ("alt+x", "×N", "N samples per column and their pass rate (Compare)"),
    ("alt+f", "family", "K test problems of one kind through every column, with a tally (Compare)"),
    # single letters, in panes without a text box
    ("a", "choose a run", "the run to follow (Train), to grade (Report)"),
    ("b", "choose a second run", "the run to compare with (Report)"),
    ("n", "new run", "start training a new run, after a confirm (Train)"),
    ("s", "stop", "ask the trainer to save and stop, after a confirm where it matters (Train)"),
    ("r", "resume", "continue a stopped run from its checkpoint (Train)"),
    ("c", "curves", "the next stage's curves (Train)"),
]
# What each pane action is, in KEY_TABLE's verbs (actions not listed are their own verb).
ACTION_VERBS: dict[str, str] = {
    "generate": "go", "run": "go",
    "reroll": "re-roll",
    "step": "next", "next_example": "next",
    "toggle_mode": "chat ⇄ raw", "toggle_chat": "chat ⇄ raw", "toggle_fewshot": "chat ⇄ raw",
    "sample_n": "×N", "family": "family", "world": "world", "export": "export",
    "pick_encoding": "find", "pick_model": "find",
    "toggle_compare": "side by side",
    "toggle_ids": "ids",
    "copy": "copy", "copy_text": "copy", "copy_ids": "copy",
    "cancel": "stop / clear", "select(None)": "stop / clear",
    "save_screenshot": "screenshot",
    "pick_run": "choose a run", "pick('a')": "choose a run", "pick('b')": "choose a second run",
    "new_run": "new run", "stop": "stop", "resume": "resume", "cycle_curves": "curves",
}


def verb_of(action: str) -> str:
    """An action string (``"pick('a')"``, ``"generate"``) as a verb of KEY_TABLE."""
    return ACTION_VERBS.get(action) or ACTION_VERBS.get(action.split("(")[0]) or action


def key_verbs(classes) -> dict[str, dict[str, list[str]]]:
    """key → verb → the classes (by name) that bind it to that verb, over every class's
    BINDINGS (described or not)."""
    out: dict[str, dict[str, list[str]]] = {}
    for cls in classes:
        for b in bindings_of(cls):
            for key in b.key.split(","):
                out.setdefault(key.strip(), {}).setdefault(verb_of(b.action), []).append(
                    cls.__name__)
    return out


def key_conflicts(classes) -> list[str]:
    """Every key bound to two verbs, or to a verb other than KEY_TABLE's, as sentences."""
    table = {key: verb for key, verb, _ in KEY_TABLE}
    problems = []
    for key, verbs in sorted(key_verbs(classes).items()):
        if len(verbs) > 1:
            what = "; ".join(f"{v} ({', '.join(c)})" for v, c in verbs.items())
            problems.append(f"{key} means {len(verbs)} things: {what}")
        elif key in table and table[key] not in verbs:
            (verb, owners), = verbs.items()
            problems.append(f"{key} is {table[key]!r} in the key table, but {verb!r} in "
                            f"{', '.join(owners)}")
    return problems


def key_table_markdown() -> str:
    rows = [f"| {key} | {verb} | {does} |\n" for key, verb, does in KEY_TABLE]
    return ("\n## One key, one verb\n\nThe same key does the same thing in every pane:\n\n"
            "| Key | Verb | Does |\n|---|---|---|\n" + "".join(rows))

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
    parts = ["# deepdive\n", APP_KEYS, key_table_markdown()]
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
