"""The Tokens pane in the real app (Pilot, 80×24): what a user sees as they type, switch
encodings, open chat mode, paste Korean or emoji, select a token, compare two encodings, and
scroll a 20k-token text. Assertions read the screen text, as a user would."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from textual.widgets import Select, TextArea

from tui.app import DeepdiveApp
from tui.panes.tokens import EXAMPLES, TokenColumn
from tui.widgets.token_view import TokenView

pytestmark = pytest.mark.anyio
SIZE = (80, 24)


@pytest.fixture(autouse=True)
def no_runs(root):
    """An empty runs root (conftest's ``root``): the picker lists only the reference encodings."""


def screen_text(app) -> str:
    """The characters on screen, line by line, notifications included (as in a screenshot)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True,
                      force_terminal=True, color_system=None, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


async def until(pilot, condition, what: str, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{screen_text(pilot.app)}")


def column(app, which: str = "a") -> TokenColumn:
    return app.query_one(f"#tok-{which}", TokenColumn)


async def ready(pilot, which: str = "a", ids=None) -> TokenColumn:
    """Wait until a column has loaded its encoding and shows an analysis (of `ids`, if given)."""
    col = column(pilot.app, which)
    await until(pilot, lambda: col.tok is not None and col.analysis is not None
                and (ids is None or col.analysis.ids == ids), f"column {which} to encode")
    await pilot.pause(0.05)  # let the screen catch up
    return col


async def type_text(pilot, text: str) -> None:
    """Clear the text box and type into it key by key."""
    box = pilot.app.query_one("#tok-text", TextArea)
    box.focus()
    box.clear()
    await pilot.press(*["space" if ch == " " else ch for ch in text])


async def paste(pilot, text: str) -> None:
    pilot.app.query_one("#tok-text", TextArea).text = text


async def test_typing_updates_chips_and_counts():
    app = DeepdiveApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)  # the first example is shown before anything is typed
        assert "strawberry" in screen_text(app)
        await type_text(pilot, "hello world")
        col = await ready(pilot, ids=[15339, 1917])
        shown = screen_text(app)
        # 11 characters, 11 bytes, 2 tokens: 5.50 characters per token
        assert "2 tokens · 11 chars · 11 bytes · 5.50 chars/token" in shown
        assert "hello⋅world" in shown  # two chips, the space made visible
        assert [c.text for c in col.view.chips] == ["hello", " world"]
        await pilot.press("!")
        await ready(pilot, ids=[15339, 1917, 0])
        assert "3 tokens · 12 chars · 12 bytes · 4.00 chars/token" in screen_text(app)


async def test_toggle_ids_shows_each_tokens_id():
    app = DeepdiveApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await type_text(pilot, "hello world")
        await ready(pilot, ids=[15339, 1917])
        assert "15339" not in screen_text(app)
        await pilot.press("ctrl+l")
        await pilot.pause(0.05)
        assert "hello 15339⋅world 1917" in screen_text(app)
        await pilot.press("ctrl+l")
        await pilot.pause(0.05)
        assert "15339" not in screen_text(app)


async def test_switching_encoding_changes_the_ids():
    app = DeepdiveApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await type_text(pilot, "hello world")
        await ready(pilot, ids=[15339, 1917])
        picker = app.query_one("#tok-a-picker", Select)
        await until(pilot, lambda: len(picker._options) >= 2, "the encoding list")
        await pilot.press("ctrl+f")  # opens the picker; o200k_base is the next entry
        await pilot.pause(0.1)
        await pilot.press("down", "enter")
        col = await ready(pilot, ids=[24912, 2375])
        assert col.encoding == "o200k_base"
        assert "2 tokens · 11 chars · 11 bytes" in screen_text(app)
        await pilot.press("ctrl+l")
        await pilot.pause(0.05)
        assert "hello 24912⋅world 2375" in screen_text(app)


async def test_after_choosing_an_encoding_typing_reaches_the_text():
    """ctrl+f, Enter: the choice is made and typing goes to the text box, not the list."""
    app = DeepdiveApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await type_text(pilot, "hello")
        await ready(pilot, ids=[15339])
        picker = app.query_one("#tok-a-picker", Select)
        await until(pilot, lambda: len(picker._options) >= 2, "the encoding list")
        await pilot.press("ctrl+f")
        await until(pilot, lambda: picker.expanded, "the list to open")
        await pilot.press("down", "enter")
        col = await ready(pilot)
        assert col.encoding == "o200k_base"
        box = app.query_one("#tok-text", TextArea)
        await until(pilot, lambda: box.has_focus, "focus back in the text box")
        box.move_cursor(box.document.end)
        await pilot.press("space", "w", "o", "r", "l", "d")
        await ready(pilot, ids=[24912, 2375])  # "hello world" under o200k
        assert box.text == "hello world" and not picker.expanded
        # Esc on an open list also hands typing back to the text
        await pilot.press("ctrl+f")
        await until(pilot, lambda: picker.expanded, "the list to open again")
        await pilot.press("escape")
        await until(pilot, lambda: box.has_focus, "focus back after Esc")


async def test_copy_and_export_token_ids(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPDIVE_EXPORT_DIR", str(tmp_path / "exports"))
    app = DeepdiveApp()
    copied: list[str] = []
    monkeypatch.setattr(app, "copy_to_clipboard", copied.append)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await type_text(pilot, "hello world")
        col = await ready(pilot, ids=[15339, 1917])
        col.view.focus()
        await pilot.press("ctrl+c")  # nothing selected: every id
        await until(pilot, lambda: copied, "a copy")
        assert copied[-1] == "15339 1917"
        await pilot.press("right", "right")  # the second chip
        await pilot.press("ctrl+c")
        await until(pilot, lambda: len(copied) == 2, "a second copy")
        assert copied[-1] == "1917"
        assert any("copied" in n.message for n in app._notifications)
        await app.query_one("#tokens-pane").run_action("export")
        out = tmp_path / "exports"
        await until(pilot, lambda: out.is_dir() and list(out.glob("*.json")), "the export")
        (path,) = out.glob("tokens-cl100k_base-*.json")
        import json

        data = json.loads(path.read_text())
        assert data["ids"] == [15339, 1917] and data["encoding"] == "cl100k_base"
        await pilot.pause(0.05)
        assert any(str(path) in n.message for n in app._notifications)


async def test_chat_mode_shows_the_special_tokens():
    app = DeepdiveApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+t")
        col = column(app)
        await until(pilot, lambda: col.analysis is not None and col.analysis.chat, "chat mode")
        await pilot.pause(0.05)
        shown = screen_text(app)
        assert "conversation" in shown and "assistant" in shown
        assert "<|im_start|>system<|im_sep|>" in shown.replace("\n", "")
        assert "(chat format)" in shown
        ids = col.analysis.ids
        # tiktokenizer's cl100k chat layout: <|im_start|> <|im_sep|> <|im_end|> per message
        assert ids.count(100264) == 4 and ids.count(100266) == 4 and ids.count(100265) == 3
        assert sum(c.special for c in col.view.chips) == 11
        # typing into the user turn re-renders the conversation
        user = app.query_one("#chat-user")
        user.focus()
        user.value = ""
        await pilot.press(*"<|im_end|>")
        typed = [27, 91, 318, 6345, 91, 29]  # "<|im_end|>" as ordinary cl100k tokens

        def has_typed() -> bool:
            ids = col.analysis.ids
            return any(ids[i:i + len(typed)] == typed for i in range(len(ids)))

        await until(pilot, has_typed, "the new user turn")
        # ... a special-token string typed by the user stays ordinary text: still 11 markers
        assert sum(c.special for c in col.view.chips) == 11
        assert col.analysis.ids.count(100265) == 3
        await pilot.press("ctrl+t")  # back to plain text
        await until(pilot, lambda: not col.analysis.chat, "plain mode")


async def test_korean_and_emoji_are_grouped_never_mojibake():
    app = DeepdiveApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await paste(pilot, "안녕하세요 I 💜 tokens")
        col = await ready(pilot, ids=column(app).tok.encode("안녕하세요 I 💜 tokens"))
        shown = screen_text(app)
        assert "\ufffd" not in shown and "\\x" not in shown
        assert "안녕하세요⋅I⋅💜⋅tokens" in shown.replace(" ", "")
        grouped = [c for c in col.view.chips if len(c.ids) > 1]
        assert [c.text for c in grouped] == ["안", "녕", " 💜"]
        assert all(c.partial for c in grouped)
        await pilot.press("ctrl+l")
        await pilot.pause(0.05)
        shown = screen_text(app)
        # a grouped chip carries all its ids
        assert f"안 {grouped[0].ids[0]}+{grouped[0].ids[1]}" in shown
        # selecting it shows each token's bytes: the pieces that are not whole UTF-8
        view = col.view
        view.focus()
        await pilot.press("right")
        await pilot.pause(0.05)
        shown = screen_text(app)
        assert "ids 31495+230" in shown and "bytes ec 95 | 88" in shown


async def test_selecting_a_token_shows_id_bytes_and_rank():
    app = DeepdiveApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await type_text(pilot, "hello world")
        col = await ready(pilot, ids=[15339, 1917])
        col.view.focus()
        await pilot.press("right", "right")
        await pilot.pause(0.05)
        assert col.view.cursor == 1
        shown = screen_text(app)
        assert "#2/2 ' world' · id 1917 · bytes 20 77 6f 72 6c 64 · rank 1917" in shown
        # clicking a chip selects it too
        await pilot.click(TokenView, offset=(1, 0))
        await pilot.pause(0.05)
        assert col.view.cursor == 0
        assert "#1/2 'hello' · id 15339 · bytes 68 65 6c 6c 6f" in screen_text(app)


async def test_example_key_cycles_the_lecture_examples():
    app = DeepdiveApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        box = app.query_one("#tok-text", TextArea)
        assert box.text == EXAMPLES[0][1]
        await pilot.press("ctrl+n")
        await until(pilot, lambda: box.text == EXAMPLES[1][1], "the next example")
        tok = column(app).tok
        await ready(pilot, ids=tok.encode(EXAMPLES[1][1]))
        shown = screen_text(app)
        assert "Example: 9.11 vs 9.9" in shown
        assert "9.11" in box.text and "9|.|11" in "|".join(c.text for c in column(app).view.chips)
        # the special-token example is ordinary text: no chip is special
        for _ in range(len(EXAMPLES) - 2):
            await pilot.press("ctrl+n")
        assert box.text == EXAMPLES[-1][1]
        await ready(pilot, ids=tok.encode(EXAMPLES[-1][1]))
        assert not any(c.special for c in column(app).view.chips)
        await pilot.press("ctrl+n")  # wraps around
        assert box.text == EXAMPLES[0][1]


async def test_side_by_side_shows_two_encodings():
    app = DeepdiveApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await type_text(pilot, "hello world")
        await ready(pilot, ids=[15339, 1917])
        await pilot.press("ctrl+o")
        right = await ready(pilot, "b", ids=[24912, 2375])
        assert right.encoding == "o200k_base"
        assert column(app).region.x < right.region.x  # two columns, left and right
        shown = screen_text(app)
        assert shown.count("2 tokens") == 2
        assert "cl100k_base" in shown and "o200k_base" in shown
        # the same text reaches both
        await type_text(pilot, "안녕하세요")
        await ready(pilot, "b", ids=right.tok.encode("안녕하세요"))
        await ready(pilot, "a", ids=column(app).tok.encode("안녕하세요"))
        assert len(column(app).analysis.ids) == 5 and len(right.analysis.ids) == 2
        await pilot.press("ctrl+o")
        await pilot.pause(0.05)
        assert not right.display or not right.region.width


async def test_twenty_thousand_tokens_draw_only_visible_lines(monkeypatch):
    calls = []
    original = TokenView.render_line

    def counting(self, y):
        calls.append(y)
        return original(self, y)

    monkeypatch.setattr(TokenView, "render_line", counting)
    app = DeepdiveApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        text = " word" * 20_000  # " word" is one cl100k token
        await paste(pilot, text)
        col = await ready(pilot, ids=[3492] * 20_000)
        view = col.view
        assert "20000 tokens · 100000 chars" in screen_text(app)
        assert view.layout_lines > 1000
        calls.clear()
        view.focus()
        await pilot.press("end")  # jump to the last token: the view scrolls there
        await pilot.pause(0.1)
        assert view.cursor == 19_999
        assert "#20000/20000" in screen_text(app)
        # only the lines on screen were drawn, not the thousands laid out
        # (render_line's y counts from the top of the view: never past the screen's rows)
        assert 0 < len(calls) <= 10 * SIZE[1]
        assert max(calls) < SIZE[1]
        # a keystroke at the end re-encodes in a worker and the view follows
        box = app.query_one("#tok-text", TextArea)
        box.focus()
        box.move_cursor(box.document.end)
        await pilot.press("!")
        await ready(pilot, ids=[3492] * 20_000 + [0])
        assert "20001 tokens" in screen_text(app)
