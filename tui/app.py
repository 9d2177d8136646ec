"""The deepdive app: one tab per pane. Nothing here imports torch; panes load it in workers,
so the first frame comes before torch (about 1.3 s to import) does."""

from __future__ import annotations

from collections.abc import Iterable

from textual import screen as textual_screen
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

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
THEMES = ["textual-dark", "textual-light", "nord", "gruvbox", "tokyo-night", "solarized-light"]
MIN_SIZE = (60, 20)  # below this the panes cannot show anything useful


class DeepdiveApp(App):
    TITLE = "deepdive"
    SUB_TITLE = "how a chat model is made"
    CSS_PATH = "app.tcss"
    # F-keys and alt+digits switch panes: text inputs never swallow them (ctrl+digits, and
    # ctrl+enter, never reach most terminals).
    BINDINGS = [
        *[
            Binding(f"f{i + 2},alt+{i + 1}", f"show_tab('{key}')", title, show=False,
                    priority=True)
            for i, (key, title, _) in enumerate(PANES)
        ],
        Binding("f1", "help", "Help", priority=True),
        Binding("ctrl+t", "cycle_theme", "Theme", show=False, priority=True),
        Binding("ctrl+s", "save_screenshot", "Screenshot", show=False, priority=True),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, start_tab: str = "tokens", run: str | None = None,
                 fps: int | None = None, animation: bool = True):
        """`fps` caps screen updates and `animation=False` turns animations off: both for slow
        SSH links and projectors. NO_COLOR (any value) makes the app monochrome (Textual)."""
        if fps:
            # The screen's update timer reads this module constant when the first screen starts,
            # so setting it before then is the same as TEXTUAL_FPS set before Textual's import.
            textual_screen.UPDATE_PERIOD = 1 / max(1, fps)
        super().__init__()
        if not animation:
            self.animation_level = "none"
        self.start_tab = start_tab if start_tab in [k for k, _, _ in PANES] else "tokens"
        self.run_name = run

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial=self.start_tab):
            for key, title, pane in PANES:
                with TabPane(title, id=key):
                    yield pane(id=f"{key}-pane")
        yield Static(self._too_small_text(), id="too-small")
        yield Footer()

    def on_mount(self) -> None:
        self._check_size()

    def on_resize(self) -> None:
        self._check_size()

    # --- small terminals ------------------------------------------------------------------

    def _too_small_text(self) -> str:
        w, h = MIN_SIZE
        return (f"Make the terminal larger: deepdive needs at least {w}×{h} "
                f"(now {self.size.width}×{self.size.height}).")

    def _check_size(self) -> None:
        small = self.size.width < MIN_SIZE[0] or self.size.height < MIN_SIZE[1]
        self.screen.set_class(small, "-too-small")
        if small:
            self.query_one("#too-small", Static).update(self._too_small_text())

    # --- actions --------------------------------------------------------------------------

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        pane = self.query_one(f"#{tab}-pane")
        # focus the pane's first input so its keys work at once
        focusable = [w for w in pane.query("*") if w.focusable]
        if focusable:
            focusable[0].focus()

    def action_help(self) -> None:
        from tui.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_cycle_theme(self) -> None:
        i = THEMES.index(self.theme) + 1 if self.theme in THEMES else 0
        self.theme = THEMES[i % len(THEMES)]
        self.notify(f"Theme: {self.theme}", timeout=2)

    def action_save_screenshot(self) -> None:
        """An SVG of the screen into the current folder; the notice says where."""
        try:
            path = self.save_screenshot(path="./")
        except OSError as e:
            self.notify(f"Could not save the screenshot: {e}", severity="error")
            return
        self.notify(f"Screenshot saved to {path}", title="Screenshot")

    # --- command palette ------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title != "Screenshot":  # ours saves to the current folder and says where
                yield command
        yield SystemCommand("Help", "Keys and what each pane shows (F1)", self.action_help)
        yield SystemCommand("Cycle theme", f"Next of {', '.join(THEMES)} (ctrl+t)",
                            self.action_cycle_theme)
        yield SystemCommand("Screenshot", "Save an SVG of the screen into the current folder "
                            "(ctrl+s)", self.action_save_screenshot)
        for i, (key, title, pane_cls) in enumerate(PANES):
            yield SystemCommand(f"Go to {title}", f"Switch to the {title} pane (F{i + 2})",
                                lambda key=key: self.action_show_tab(key))
            yield from self._pane_commands(key, title, pane_cls)

    def _pane_commands(self, key: str, title: str, pane_cls) -> Iterable[SystemCommand]:
        """Each pane's own key bindings, as palette commands that open the pane and act."""
        for binding in pane_bindings(pane_cls):
            keys = binding.key.split(",")[0]

            def run(key: str = key, action: str = binding.action) -> None:
                self.action_show_tab(key)
                pane = self.query_one(f"#{key}-pane")
                self.call_later(pane.run_action, action)

            yield SystemCommand(f"{title}: {binding.description}", f"({keys})", run)


def pane_bindings(pane_cls) -> list[Binding]:
    """The described bindings a pane class declares (the help screen and palette list these)."""
    out = []
    for b in getattr(pane_cls, "BINDINGS", []):
        if isinstance(b, tuple):
            b = Binding(*b)
        if isinstance(b, Binding) and b.description:
            out.append(b)
    return out
