"""The deepdive app: one tab per pane.

First paint is fast because only the pane the app opens on is imported and built; the others
are imported and composed on their first visit. Nothing here imports torch; panes load it in
workers, so the first frame never waits for torch's import (over a second: docs/measurements.md),
and a pane the user never opens (Compare loads three models) costs nothing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from textual import screen as textual_screen
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, Input, Static, TabbedContent, TabPane, TextArea

from tui.pane_registry import PANE_KEYS, PANES, pane_bindings, pane_class
from tui.runpick import default_run

THEMES = ["textual-dark", "textual-light", "nord", "gruvbox", "tokyo-night", "solarized-light"]
MIN_SIZE = (60, 20)  # below this the panes cannot show anything useful


class PaneTabs(TabbedContent):
    """Tabs that only change when asked (a pane key, a click, the palette).

    Textual's TabbedContent switches to any tab whose widget gets focus. Here that only ever
    happens when a pane hidden a moment ago focuses its own widget late (on Show, after a
    refresh), which would yank the user back to the pane they just left. Such focus is sent
    back to the shown pane instead."""

    def _on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        event.stop()
        event.prevent_default()  # not TabbedContent's handler, which switches tabs
        if event.tab_pane.id != self.active and isinstance(self.app, DeepdiveApp):
            self.app.call_later(self.app.refocus)


class TooSmall(Static):
    """The "make the terminal larger" notice. The screen's breakpoint classes (see
    HORIZONTAL_BREAKPOINTS) show it in place of the panes; it keeps its size figure current."""

    def on_show(self) -> None:
        self._say()

    def on_resize(self) -> None:
        self._say()

    def _say(self) -> None:
        (w, h), size = MIN_SIZE, self.app.size
        self.update(f"Make the terminal larger.\ndeepdive needs at least {w}×{h} "
                    f"(now {size.width}×{size.height}).")


class DeepdiveApp(App):
    TITLE = "deepdive"
    SUB_TITLE = "how a chat model is made"
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))  # absolute: subclasses live elsewhere
    # Textual sets these classes on the screen as the terminal resizes (app.tcss uses them)
    # No auto focus: the app focuses the shown pane's text box itself. Textual's would focus
    # the tab bar at start, and after the palette closes could focus a widget of another pane,
    # which switches the tab back to that pane.
    AUTO_FOCUS = None
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (MIN_SIZE[0], "-wide-enough")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (MIN_SIZE[1], "-tall-enough")]
    # F-keys and alt+digits switch panes, as priority bindings so that a focused text input
    # never swallows them (ctrl+digits, and ctrl+enter, never reach most terminals).
    BINDINGS = [
        *[
            Binding(f"f{i + 2},alt+{i + 1}", f"show_tab('{key}')", title, show=False,
                    priority=True)
            for i, (key, title, _) in enumerate(PANES)
        ],
        Binding("f1", "help", "Help", priority=True),
        # ctrl+t is the panes' chat ⇄ raw (one key, one verb: tui/help.py KEY_TABLE); themes
        # are in the command palette
        Binding("ctrl+s", "save_screenshot", "Screenshot", show=False, priority=True),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, start_tab: str = "tokens", run: str | None = None,
                 fps: int | None = None, animation: bool = True, read_only: bool = False):
        """`fps` caps screen updates and `animation=False` turns animations off: both for slow
        SSH links and projectors. NO_COLOR (any value) makes the app monochrome (Textual).
        `read_only` (a served session, see tui/read_only.py): no training, no file written."""
        if fps:
            # The screen's update timer reads this module constant when the first screen starts,
            # so setting it before then is the same as TEXTUAL_FPS set before Textual's import.
            textual_screen.UPDATE_PERIOD = 1 / max(1, fps)
        super().__init__()
        if not animation:
            self.animation_level = "none"
        self.start_tab = start_tab if start_tab in PANE_KEYS else "tokens"
        # the run every pane opens on: the one named, else `tiny` when there is one (else each
        # pane picks a finished run, tui/runpick.py); `run_given`: the user named it
        self.run_name = run or default_run()
        self.run_given = run is not None
        self.read_only = read_only
        if read_only:  # every writer of files goes through tui/exports.py, which then refuses
            from tui.exports import READ_ONLY_ENV

            os.environ[READ_ONLY_ENV] = "1"
        self._first_frame_done = False
        self._after_first_frame: list[Callable[[], object]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with PaneTabs(initial=self.start_tab):
            for key, title, _ in PANES:
                with TabPane(title, id=key):
                    if key == self.start_tab:  # the others are built on their first visit
                        yield pane_class(key)(id=f"{key}-pane")
        yield TooSmall(id="too-small")
        yield Footer()

    def on_ready(self) -> None:
        # Textual posts Ready once the first frame is drawn
        self._first_frame_done = True
        # into the opened pane, not the tab bar (Textual's auto focus): its keys work at once
        self._focus_first(self.start_tab, self.pane(self.start_tab))
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

    # --- actions --------------------------------------------------------------------------

    def action_show_tab(self, tab: str) -> None:
        if tab not in PANE_KEYS:
            return
        self.query_one(TabbedContent).active = tab
        pane = self.pane(tab)
        # focus the pane's first focusable widget so its keys work at once (after a fresh
        # pane has composed its children)
        self.call_after_refresh(self._focus_first, tab, pane)

    def refocus(self) -> None:
        """Focus back into the shown pane (see PaneTabs)."""
        tab = self.query_one(TabbedContent).active
        if tab in PANE_KEYS:
            self._focus_first(tab, self.pane(tab))

    def _focus_first(self, tab: str, pane: Widget) -> None:
        if self.query_one(TabbedContent).active != tab:
            return  # another pane key came first: focusing here would switch back
        focused = self.focused
        if focused is not None and pane in focused.ancestors_with_self:
            return  # already inside the pane (e.g. the pane focused its own prompt)
        focusable = [w for w in pane.query("*") if w.focusable]
        # the pane's main text box first (typing goes there: a TextArea, else an Input), else
        # its first control, else the pane itself
        areas = [w for w in focusable if isinstance(w, TextArea)]
        inputs = [w for w in focusable if isinstance(w, Input)]
        if areas or inputs or focusable:
            (areas or inputs or focusable)[0].focus()
        elif pane.focusable:
            pane.focus()

    def action_help(self) -> None:
        # imported on first use, as the panes are: its Markdown widget is no part of first paint
        from tui.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_cycle_theme(self) -> None:
        i = THEMES.index(self.theme) + 1 if self.theme in THEMES else 0
        self.theme = THEMES[i % len(THEMES)]
        self.notify(f"Theme: {self.theme}", timeout=2)

    def action_save_screenshot(self) -> None:
        """An SVG of the screen into the export folder (tui/exports.py); the notice says where."""
        from tui.exports import export_dir, stamped
        from tui.read_only import refused

        if refused(self, "saving screenshots"):
            return
        try:
            path = self.save_screenshot(stamped("deepdive", ".svg"), path=str(export_dir()))
        except OSError as e:
            self.notify(f"Could not save the screenshot: {e}", severity="error")
            return
        self.notify(f"Screenshot saved to {path}", title="Screenshot")

    # --- command palette ------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title != "Screenshot":  # ours saves to the export folder and says where
                yield command
        yield SystemCommand("Help", "Keys and what each pane shows (F1)", self.action_help)
        yield SystemCommand("Cycle theme", f"Next of {', '.join(THEMES)}",
                            self.action_cycle_theme)
        yield SystemCommand("Save screenshot", "An SVG of the screen into the export folder, "
                            "$DEEPDIVE_EXPORT_DIR or ~/deepdive-exports (ctrl+s)",
                            self.action_save_screenshot)
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
        # commands without a key of their own (copy, export): (title, help, action)
        for name, text, action in getattr(pane_class(key), "PALETTE", ()):

            def act(key: str = key, action: str = action) -> None:
                self.action_show_tab(key)
                self.call_after_refresh(self.pane(key).run_action, action)

            yield SystemCommand(f"{title}: {name}", text, act)

