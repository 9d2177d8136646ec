"""The app shell (Pilot, 80×24, an empty runs root): pane keys, even from a text box; the help
screen lists every pane's keys; the command palette; themes; the screenshot key; the
small-terminal notice; and what each pane says when there is nothing to show yet."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from textual.command import CommandPalette
from textual.widgets import Input, TabbedContent, TextArea

from tui.app import DeepdiveApp
from tui.help import HelpScreen
from tui.pane_registry import PANES, pane_bindings, pane_class

pytestmark = pytest.mark.anyio
SIZE = (80, 24)


@pytest.fixture(autouse=True)
def empty_root(root):
    """Every test here runs on an empty runs root (conftest's ``root``)."""
    return root


def screen_text(app, background: bool = True) -> str:
    """The characters on screen, notifications and modal screens included (`background`:
    with the screens under a modal one showing through)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True,
                      force_terminal=True, color_system=None, legacy_windows=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens if background else None))
    return console.export_text()


async def until(pilot, condition, what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what} (focus: {pilot.app.focused})\n"
                         f"{screen_text(pilot.app)}")


def active(app) -> str:
    return app.query_one(TabbedContent).active


async def go(pilot, key: str, tab: str) -> None:
    """Press a pane key; the pane is built and shown, and stays shown."""
    await pilot.press(key)
    await until(pilot, lambda: active(pilot.app) == tab and pilot.app.query(f"#{tab}-pane"),
                f"{key} to open {tab}")
    await pilot.pause(0.2)
    assert active(pilot.app) == tab, f"{key}: {tab} was left for {active(pilot.app)}"


async def open_palette(pilot) -> None:
    """ctrl+p, then wait until its search box has focus (keys before that reach the pane)."""
    await pilot.press("ctrl+p")
    await until(pilot, lambda: isinstance(pilot.app.screen, CommandPalette)
                and isinstance(pilot.app.focused, Input), "the command palette")


def run(app):
    return app.run_test(size=SIZE, notifications=True)


async def test_function_keys_switch_panes_even_from_a_text_box():
    app = DeepdiveApp()
    async with run(app) as pilot:
        assert active(app) == "tokens"
        # only the opened pane is built at start; the others on their first visit
        assert not app.query("#compare-pane") and not app.query("#sample-pane")
        # the Tokens text box has focus: typing (and the pane's keys) work at once
        await until(pilot, lambda: isinstance(app.focused, TextArea), "focus in the pane")
        await go(pilot, "f3", "sample")
        assert isinstance(app.focused, TextArea)  # the Sample prompt box has focus ...
        await go(pilot, "f5", "compare")  # ... and did not swallow F5
        box = app.query_one("#compare-prompt", Input)
        box.focus()
        await pilot.press("h", "i")
        assert box.value == "hi"  # typing goes to the box
        await go(pilot, "f6", "report")  # and F6 still switches
        await go(pilot, "f4", "train")
        await go(pilot, "f2", "tokens")
        assert app.query_one("#tok-text", TextArea).has_focus
        await go(pilot, "f3", "sample")
        assert app.query_one("#compare-prompt", Input).value == "hi"  # panes keep their state


async def test_alt_digits_switch_panes():
    app = DeepdiveApp()
    async with run(app) as pilot:
        for i, (key, _, _) in reversed(list(enumerate(PANES))):
            await go(pilot, f"alt+{i + 1}", key)


async def test_start_tab_and_mouse_click_on_a_tab_build_the_pane():
    app = DeepdiveApp(start_tab="report")
    async with run(app) as pilot:
        assert active(app) == "report" and app.query("#report-pane")
        assert not app.query("#tokens-pane")
        await pilot.click("#--content-tab-train")
        await until(pilot, lambda: app.query("#train-pane"), "the Train pane")
        assert active(app) == "train"


async def test_help_lists_every_panes_keys():
    app = DeepdiveApp()
    # large enough that no table cell wraps, so every key reads as one phrase
    async with app.run_test(size=(120, 50)) as pilot:
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        await pilot.pause(0.2)
        seen = screen_text(app, background=False)
        for _ in range(100):  # page through it, keeping everything that was on screen
            await pilot.press("pagedown")
            await pilot.pause(0.02)
            text = screen_text(app, background=False)
            if text in seen:
                break
            seen += text
        flat = " ".join(seen.replace("│", " ").split())
        assert "F2–F6 or" in flat and "alt+1–5" in flat and "ctrl+s" in flat
        for i, (key, title, _) in enumerate(PANES):
            assert f"{title} (F{i + 2})" in flat, title
            for binding in pane_bindings(pane_class(key)):
                # (a narrow key column may wrap "ctrl+n / f7" over two lines: key by key)
                assert all(k in flat.split() for k in binding.key.split(",")), binding.key
                assert binding.description in flat, (title, binding.description)
        # each pane says what it shows, Sample and Report included
        assert "A terminal tiktokenizer" in flat
        assert "token by token" in flat
        assert "report card" in flat.lower() or "measured" in flat
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "help to close")


async def test_command_palette_has_the_apps_actions():
    app = DeepdiveApp()
    async with run(app) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ["Help", "Cycle theme", "Save screenshot", "Go to Tokens", "Go to Report",
                      "Tokens: Chat", "Tokens: Side by side", "Sample: Generate",
                      "Tokens: Copy token ids", "Tokens: Export tokens (JSON)",
                      "Sample: Copy sample text", "Sample: Export sample (Markdown + JSON)"]:
            assert title in titles, title
        # what a person types to find them: each word finds at least one entry
        for word in ("copy", "export", "save", "screenshot"):
            assert any(word in t.lower() for t in titles), word
        await open_palette(pilot)
        await pilot.press(*"go to report")
        await until(pilot, lambda: "Go to Report" in screen_text(app), "the palette to match")
        await pilot.pause(0.3)  # the list settles on its best match
        await pilot.press("enter")
        await until(pilot, lambda: active(app) == "report", "the palette to switch panes")
        # a pane's own action, run from the palette: Tokens' chat mode
        await open_palette(pilot)
        await pilot.press(*"tokens: chat")
        await until(pilot, lambda: "Tokens: Chat" in screen_text(app), "Tokens: Chat")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: active(app) == "tokens"
                    and app.query_one("#tokens-pane").has_class("-chat"), "chat mode")


async def test_palette_cycles_themes():
    """Themes live in the palette: ctrl+t is chat ⇄ raw in every pane (one key, one verb)."""
    app = DeepdiveApp()
    async with run(app) as pilot:
        first = app.theme
        (command,) = [c for c in app.get_system_commands(app.screen) if c.title == "Cycle theme"]
        command.callback()
        await pilot.pause(0.1)
        assert app.theme != first
        assert f"Theme: {app.theme}" in screen_text(app)


async def test_ctrl_s_saves_an_svg_into_the_export_folder_and_says_where(tmp_path, monkeypatch):
    here, exports = tmp_path / "here", tmp_path / "exports"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("DEEPDIVE_EXPORT_DIR", str(exports))
    app = DeepdiveApp()
    async with run(app) as pilot:
        await pilot.pause(0.2)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: exports.is_dir() and list(exports.glob("*.svg")),
                    "the screenshot file")
        assert not list(here.iterdir())  # never the current folder
        (svg,) = exports.glob("*.svg")
        assert svg.read_text().lstrip().startswith("<svg") and "Tokens" in svg.read_text()
        await pilot.pause(0.1)
        notices = [n.message for n in app._notifications]
        assert any(str(svg) in m for m in notices), notices
        assert "Screenshot saved to" in screen_text(app)


async def test_small_terminal_notice():
    app = DeepdiveApp()
    async with app.run_test(size=(50, 15)) as pilot:
        await until(pilot, lambda: "(now 50×15)" in screen_text(app), "the notice")
        text = screen_text(app)
        assert "Make the terminal larger" in text and "60×20" in text
        assert "Tokens  Sample" not in text
        await pilot.resize_terminal(70, 18)  # wide enough, still too short
        await until(pilot, lambda: "(now 70×18)" in screen_text(app), "the notice to update")
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: "Make the terminal larger" not in screen_text(app),
                    "the notice to go")
        text = screen_text(app)
        assert "Tokens  Sample  Train  Compare  Report" in text


async def test_empty_states_say_what_to_do(empty_root):
    app = DeepdiveApp()
    async with run(app) as pilot:
        box = app.query_one("#tok-text", TextArea)
        col = app.query_one("#tok-a")
        await until(pilot, lambda: col.analysis is not None, "cl100k to load")
        box.clear()
        await until(pilot, lambda: col.analysis.ids == [], "the empty text")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "type above to see its tokens" in text and "0 tokens" in text

        await go(pilot, "f3", "sample")
        await until(pilot, lambda: "deepdive train" in screen_text(app), "Sample's hint")
        assert "No trained models" in screen_text(app)

        await go(pilot, "f4", "train")
        await until(pilot, lambda: "start one" in screen_text(app), "Train's hint")

        await go(pilot, "f5", "compare")
        await until(pilot, lambda: "no trained run yet" in screen_text(app), "Compare's hint")
        assert "deepdive demo" in " ".join(screen_text(app).split())

        await go(pilot, "f6", "report")
        await until(pilot, lambda: "Pick a run" in screen_text(app), "Report's hint")
        assert "deepdive train" in " ".join(screen_text(app).split())


def test_export_folder_is_configurable_and_never_overwrites(tmp_path, monkeypatch):
    from tui.exports import export_dir, write_export

    monkeypatch.setenv("DEEPDIVE_EXPORT_DIR", str(tmp_path / "out"))
    assert export_dir() == (tmp_path / "out").resolve() and export_dir().is_dir()
    first = write_export("report-tiny.md", "# one")
    second = write_export("report-tiny.md", "# two")
    assert first.name == "report-tiny.md" and second.name == "report-tiny-2.md"
    assert first.read_text() == "# one" and second.read_text() == "# two"
    assert write_export("../../escape.json", "{}").parent == export_dir()  # a name, not a path
    monkeypatch.delenv("DEEPDIVE_EXPORT_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert export_dir(create=False) == (tmp_path / "home" / "deepdive-exports").resolve()


def all_binding_classes():
    return [DeepdiveApp] + [pane_class(key) for key, _, _ in PANES]


def test_key_table_one_key_one_verb_in_the_panes_we_own():
    """Every key means one verb across the app and the panes (Compare aside: next test)."""
    from tui.help import KEY_TABLE, key_conflicts

    classes = [c for c in all_binding_classes() if c.__name__ != "ComparePane"]
    assert key_conflicts(classes) == []
    assert len({k for k, _, _ in KEY_TABLE}) == len(KEY_TABLE)  # the table itself: one row a key


def test_key_table_one_key_one_verb_in_every_pane():
    from tui.help import key_conflicts

    assert key_conflicts(all_binding_classes()) == []


def test_help_lists_the_key_table():
    from tui.help import KEY_TABLE, help_markdown

    text = help_markdown()
    assert "One key, one verb" in text
    for key, verb, _ in KEY_TABLE:
        assert f"| {key} | {verb} |" in text


def test_python_m_deepdive_is_the_deepdive_command(tmp_path):
    import subprocess
    import sys

    # from any folder (torchrun runs `-m deepdive` wherever it is started)
    out = subprocess.run([sys.executable, "-m", "deepdive", "--help"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Usage: deepdive" in out.stdout and "tokenize" in out.stdout


def test_no_command_opens_the_app(monkeypatch):
    from deepdive.cli import app as cli

    opened = []
    monkeypatch.setattr(DeepdiveApp, "run", lambda self, *a, **k: opened.append(self.start_tab))
    cli([], standalone_mode=False)
    assert opened == ["tokens"]


def test_every_key_binding_names_an_action_that_exists():
    """A binding whose action method is missing does nothing when its key is pressed."""
    from tui.help import HelpScreen
    from tui.pane_registry import PANE_KEYS, bindings_of, pane_class
    from tui.panes.world import WorldScreen
    from tui.widgets.confirm import Confirm

    classes = [DeepdiveApp, HelpScreen, WorldScreen, Confirm, *map(pane_class, PANE_KEYS)]
    missing = []
    for cls in classes:
        for b in bindings_of(cls):
            target, action = (DeepdiveApp, b.action[4:]) if b.action.startswith("app.") \
                else (cls, b.action)
            name = action.split("(")[0]
            if not hasattr(target, f"action_{name}"):
                missing.append(f"{cls.__name__}: {b.key} -> {b.action}")
    assert not missing, missing
