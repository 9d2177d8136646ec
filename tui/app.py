"""The deepdive app: one tab per pane.

First paint is fast because only the pane the app opens on is imported and built; the others
are imported and composed on their first visit. Nothing here imports torch; panes load it in
workers, so the first frame comes before torch (about 1.3 s to import) does, and a pane the
user never opens (Compare loads three models) costs nothing."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from textual import screen as textual_screen
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

# (key, title, "module:class"): pane classes are imported on first use (see pane_class).
PANES = [
    ("tokens", "Tokens", "tui.panes.tokens:TokensPane"),
    ("sample", "Sample", "tui.panes.sample:SamplePane"),
    ("train", "Train", "tui.panes.train:TrainPane"),
    ("compare", "Compare", "tui.panes.compare:ComparePane"),
    ("report", "Report", "tui.panes.report:ReportPane"),
]
PANE_KEYS = [key for key, _, _ in PANES]
THEMES = ["textual-dark", "textual-light", "nord", "gruvbox", "tokyo-night", "solarized-light"]
MIN_SIZE = (60, 20)  # below this the panes cannot show anything useful


class DeepdiveApp(App):
    TITLE = "deepdive"
    SUB_TITLE = "how a chat model is made"
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))  # absolute: subclasses live elsewhere
    # F-keys and alt+digits switch panes, as priority bindings so that a focused text input
    # never swallows them (ctrl+digits, and ctrl+enter, never reach most terminals).
    BINDINGS = [
        *[
            Binding(f"f{i + 2},alt+{i + 1}", f"show_tab('{key}')", title, show=False,
                    priority=True)
            for i, (key, title, _) in enumerate(PANES)
        ],
        Binding("f1", "help", "Help", priority=True),
        # not priority: the Sample and Compare panes use ctrl+t for their own action
        Binding("ctrl+t", "cycle_theme", "Theme", show=False),
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
        self.start_tab = start_tab if start_tab in PANE_KEYS else "tokens"
        self.run_name = run
        self._first_frame_done = False
        self._after_first_frame: list[Callable[[], object]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial=self.start_tab):
            for key, title, _ in PANES:
                with TabPane(title, id=key):
                    if key == self.start_tab:  # the others are built on their first visit
                        yield pane_class(key)(id=f"{key}-pane")
        yield Static(self._too_small_text(), id="too-small")
        yield Footer()

    def on_mount(self) -> None:
        self._check_size()
        # into the opened pane, not the tab bar (Textual's auto focus): its keys work at once
        self.call_after_refresh(self._focus_first, self.start_tab, self.pane(self.start_tab))

    def on_ready(self) -> None:
        # Textual posts Ready once the first frame is drawn
        self._first_frame_done = True
        callbacks, self._after_first_frame = self._after_first_frame, []
        for callback in callbacks:
            self.call_later(callback)

    def after_first_frame(self, callback: Callable[[], object]) -> None:
        """Run callback once the first frame is on screen (at once if it already is): panes
        start loading tokenizers or models here, so the loading never delays first paint."""
        if self._first_frame_done:
            self.call_later(callback)
        else:
            self._after_first_frame.append(callback)

    def on_resize(self) -> None:
        self._check_size()

    # --- panes ----------------------------------------------------------------------------

    def pane(self, key: str) -> Widget:
        """The pane widget for key, built (imported, composed, mounted) on first use."""
        found = self.query(f"#{key}-pane")
        if found:
            return found.first()
        widget = pane_class(key)(id=f"{key}-pane")
        self.query_one(f"TabPane#{key}", TabPane).mount(widget)
        return widget

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # a tab clicked with the mouse (or chosen with the tab bar's arrows) gets its pane too
        key = event.pane.id
        if key in PANE_KEYS:
            self.pane(key)

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
        if tab not in PANE_KEYS:
            return
        self.query_one(TabbedContent).active = tab
        pane = self.pane(tab)
        # focus the pane's first focusable widget so its keys work at once (after a fresh
        # pane has composed its children)
        self.call_after_refresh(self._focus_first, tab, pane)

    def _focus_first(self, tab: str, pane: Widget) -> None:
        if self.query_one(TabbedContent).active != tab:
            return  # another pane key came first: focusing here would switch back
        focused = self.focused
        if focused is not None and pane in focused.ancestors_with_self:
            return  # already inside the pane (e.g. the pane focused its own prompt)
        focusable = [w for w in pane.query("*") if w.focusable]
        if focusable:
            focusable[0].focus()
        elif pane.focusable:
            pane.focus()

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
            path = self.save_screenshot(path=os.getcwd())
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
        for i, (key, title, _) in enumerate(PANES):
            yield SystemCommand(f"Go to {title}", f"Switch to the {title} pane (F{i + 2})",
                                lambda key=key: self.action_show_tab(key))
            yield from self._pane_commands(key, title)

    def _pane_commands(self, key: str, title: str) -> Iterable[SystemCommand]:
        """Each pane's own key bindings, as palette commands that open the pane and act."""
        for binding in pane_bindings(pane_class(key)):
            keys = binding.key.split(",")[0]

            def run(key: str = key, action: str = binding.action) -> None:
                self.action_show_tab(key)
                # after the pane (perhaps just built) has mounted its children
                self.call_after_refresh(self.pane(key).run_action, action)

            yield SystemCommand(f"{title}: {binding.description}", f"({keys})", run)


def pane_class(key: str) -> type[Widget]:
    """The pane class for key, imported now (the first frame imports only the first pane)."""
    spec = next(spec for k, _, spec in PANES if k == key)
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def pane_bindings(pane_cls) -> list[Binding]:
    """The described bindings a pane class declares (the help screen and palette list these)."""
    out = []
    for b in getattr(pane_cls, "BINDINGS", []):
        if isinstance(b, tuple):
            b = Binding(*b)
        if isinstance(b, Binding) and b.description:
            out.append(b)
    return out
