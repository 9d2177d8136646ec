"""The deepdive app: one tab per pane. Nothing here imports torch; panes load it in workers."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, TabbedContent, TabPane

from tui.panes.compare import ComparePane
from tui.panes.report import ReportPane
from tui.panes.sample import SamplePane
from tui.panes.tokens import TokensPane
from tui.panes.train import TrainPane

PANES = [
    ("tokens", "Tokens", TokensPane),
    ("sample", "Sample", SamplePane),
    ("train", "Train", TrainPane),
    ("compare", "Compare", ComparePane),
    ("report", "Report", ReportPane),
]


class DeepdiveApp(App):
    TITLE = "deepdive"
    SUB_TITLE = "how a chat model is made"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        *[
            Binding(f"f{i + 2}", f"show_tab('{key}')", title, show=False)
            for i, (key, title, _) in enumerate(PANES)
        ],
        Binding("f1", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, start_tab: str = "tokens", run: str | None = None):
        super().__init__()
        self.start_tab = start_tab
        self.run_name = run

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial=self.start_tab):
            for key, title, pane in PANES:
                with TabPane(title, id=key):
                    yield pane(id=f"{key}-pane")
        yield Footer()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_help(self) -> None:
        from tui.help import HelpScreen

        self.push_screen(HelpScreen())
