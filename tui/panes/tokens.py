"""The Tokens pane: a terminal tiktokenizer.

Type or paste text (or a system/user/assistant conversation in chat mode) and see it as token
chips, live, under any reference encoding or the tokenizer of any run in checkpoints/; put two
encodings side by side; select a chip to see its ids, bytes and rank.

Tokenizers load in worker threads after the first frame (cl100k takes about a second); short
texts encode on the UI thread (well under a millisecond), long ones in a worker.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Label, Select, Static, TextArea

from engine.api import render_chat
from tui.widgets.chips import Chip, group_chips, layout_chips
from tui.widgets.picker import Picker
from tui.widgets.token_view import TokenView

HELP = """\
A terminal tiktokenizer. Type or paste text; every token is a coloured chip (whitespace shown as
⋅ → ↵). Tokens that are only part of a character (Korean, emoji) are grouped into one chip with
all their ids. Chat mode renders a conversation in the chat format with its special tokens.
Tab into the chips and use the arrows (or click) to see a token's ids, bytes and rank; ctrl+c
copies the selected chip's ids (all ids when none is selected). The palette (ctrl+p) exports the
tokens as JSON into the export folder.
"""

# (name, text): the lecture's examples. Each one shows a way tokens differ from characters.
EXAMPLES = [
    ("strawberry", "How many r's are in strawberry?\nstrawberry Strawberry STRAWBERRY straw berry"),
    ("9.11 vs 9.9", "Which is bigger, 9.11 or 9.9?\n9.11 > 9.9\n12345 + 67890 = 80235"),
    ("Korean", "안녕하세요! 만나서 반갑습니다. 토큰화는 재미있어요."),
    ("emoji", "I 💜 tokens 🦙 and 👩‍👩‍👧 families"),
    ("trailing whitespace", "hello world\nhello world \nhello world  \n\tindented\n    spaces"),
    ("special tokens", "<|endoftext|> <|im_start|>user<|im_sep|> <|bos|> <|assistant_start|>"),
]
DEFAULT_CHAT = {
    "system": "You are a helpful assistant.",
    "user": "How many r's are in strawberry?",
    "assistant": "There are 3 r's in strawberry.",
}
ROLES = ("system", "user", "assistant")
DEBOUNCE_S = 0.05
SYNC_CHARS = 4000  # longer texts encode in a worker thread

_cache: dict[str, object] = {}
_cache_lock = threading.Lock()


def load_tokenizer(name: str):
    """get_encoding, cached for reference encodings (runs may be retrained)."""
    from engine.api import get_encoding, reference_encodings

    with _cache_lock:
        if name in _cache:
            return _cache[name]
    tok = get_encoding(name)
    if name in reference_encodings():
        with _cache_lock:
            _cache[name] = tok
    return tok


def encoding_choices() -> list[tuple[str, str]]:
    """(label, value) for the picker: every reference encoding, then each run's tokenizer."""
    from engine.api import list_runs, reference_encodings
    from tui.runpick import run_label

    choices = [(name, name) for name in reference_encodings()]
    choices += [(f"run: {run_label(r)}", r.name) for r in list_runs() if r.has_tokenizer]
    return choices


@dataclass
class Analysis:
    ids: list[int]
    chips: list[Chip]
    n_chars: int
    n_bytes: int
    chat: bool


def _token_bytes(tok, i: int) -> bytes:
    try:
        return tok.token_bytes(i)
    except Exception:  # an id this encoding cannot decode: show it, do not crash
        return f"<|id {i}|>".encode()


def analyse(tok, source: str | list[dict]) -> Analysis:
    """Encode text (always as ordinary text) or render a conversation, then group into chips."""
    if isinstance(source, str):
        ids, texts, chat_mode = tok.encode(source), [source], False
    else:
        ids, texts, chat_mode = render_chat(tok, source), [m["content"] for m in source], True
    specials = special_ids(tok, ids if chat_mode else ())
    chips = group_chips(ids, lambda i: _token_bytes(tok, i), specials)
    n_bytes = sum(map(utf8_size, texts))
    return Analysis(ids, chips, sum(map(len, texts)), n_bytes, chat_mode)


def utf8_size(text: str) -> int:
    """UTF-8 bytes of text as the encoders see it. A lone surrogate (pasted from a broken
    clipboard or terminal) has no UTF-8 form: the encoders tokenize U+FFFD in its place (the
    chip shows �), so it counts as that, instead of failing the whole analysis."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:  # tiktoken's own repair: surrogate pairs joined, lone ones U+FFFD
        fixed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return len(fixed.encode("utf-8"))


def special_ids(tok, extra_ids=()) -> set[int]:
    """Ids drawn as special: the tokenizer's specials, those its Encoding knows, and any id among
    `extra_ids` (a rendered chat) that has no bytes of its own, such as an added chat marker."""
    ids = set(tok.specials.values())
    ids |= {tok.enc.encode_single_token(s) for s in tok.enc.special_tokens_set}
    for i in set(extra_ids) - ids:
        try:
            tok.token_bytes(i)
        except Exception:
            ids.add(i)
    return ids


def describe(tok, chip: Chip, index: int, total: int) -> str:
    """One line about a selected chip: its ids, the bytes of each, and the BPE rank."""
    head = f"#{index + 1}/{total} {chip.text!r}"
    if chip.special:
        return f"{head} · id {chip.ids[0]} · special token: only the chat format makes it"
    hexes = " | ".join(" ".join(f"{b:02x}" for b in p) for p in chip.pieces)
    if len(chip.ids) > 1:
        ids = "+".join(map(str, chip.ids))
        return (f"{head} · ids {ids} · bytes {hexes} · {len(chip.ids)} tokens, "
                f"each not whole UTF-8, make these characters")
    piece = chip.pieces[0]
    rank = _rank(tok, piece)
    if rank is None:
        where = "not a single BPE token"
    elif len(piece) == 1:
        where = f"rank {rank}: a raw byte"
    else:
        where = f"rank {rank} (lower = merged earlier = more common)"
    return f"{head} · id {chip.ids[0]} · bytes {hexes} · {where}"


def _rank(tok, piece: bytes) -> int | None:
    try:
        return tok.enc.encode_single_token(piece)
    except Exception:
        return None


def counts_line(a: Analysis) -> str:
    per = f"{a.n_chars / len(a.ids):.2f}" if a.ids else "–"
    chat = " (chat format)" if a.chat else ""
    return (f"{len(a.ids)} tokens{chat} · {a.n_chars} chars · {a.n_bytes} bytes · "
            f"{per} chars/token")


class TokenColumn(Vertical):
    """An encoding picker, counts, the chips, and a line about the selected chip."""

    DEFAULT_CSS = """
    TokenColumn { width: 1fr; height: 1fr; }
    TokenColumn > Select { width: 1fr; margin: 0 0 0 0; }
    TokenColumn > .tok-counts { height: 1; color: $text-muted; padding: 0 1; }
    TokenColumn > .tok-detail { height: auto; max-height: 2; padding: 0 1; color: $text; }
    """

    class Encoded(Message):
        def __init__(self, serial: int, analysis: Analysis | str, layout=None) -> None:
            super().__init__()
            self.serial = serial
            self.analysis = analysis
            self.layout = layout  # (width, show_ids, Layout) or None

    class Loaded(Message):
        def __init__(self, name: str, tok: object | None, error: str | None) -> None:
            super().__init__()
            self.name = name
            self.tok = tok
            self.error = error

    def __init__(self, encoding: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.encoding = encoding
        self.tok = None
        self.source: str | list[dict] = ""
        self.analysis: Analysis | None = None
        self._serial = 0

    def compose(self) -> ComposeResult:
        yield Picker([(self.encoding, self.encoding)], value=self.encoding, allow_blank=False,
                     compact=True, id=f"{self.id}-picker")
        yield Static("", classes="tok-counts")
        yield TokenView(id=f"{self.id}-view")
        yield Static("", classes="tok-detail")

    @property
    def view(self) -> TokenView:
        return self.query_one(TokenView)

    def set_choices(self, choices: list[tuple[str, str]]) -> None:
        picker = self.query_one(Select)
        if self.encoding not in [v for _, v in choices]:
            choices = [(self.encoding, self.encoding), *choices]
        with picker.prevent(Select.Changed):
            picker.set_options(choices)
            picker.value = self.encoding

    # --- loading --------------------------------------------------------------------------

    def load(self, name: str) -> None:
        self.encoding = name
        self.tok = None
        self.view.set_chips([], placeholder=f"loading {name}…")
        self._load_worker(name)

    @work(thread=True, exclusive=True, group="load")
    def _load_worker(self, name: str) -> None:
        try:
            tok, error = load_tokenizer(name), None
        except Exception as e:  # unknown encoding, broken tokenizer.json: say so, keep going
            tok, error = None, f"{type(e).__name__}: {e}"
        self.post_message(self.Loaded(name, tok, error))

    def on_token_column_loaded(self, message: Loaded) -> None:
        message.stop()
        if message.name != self.encoding:
            return  # the user picked another one meanwhile
        if message.error:
            self.view.set_chips([], placeholder=f"could not load {message.name}")
            self.app.notify(message.error, title=f"Encoding {message.name}", severity="error")
            return
        self.tok = message.tok
        self.encode()

    @on(Select.Changed)
    def _picked(self, event: Select.Changed) -> None:
        event.stop()
        if event.value != Select.NULL and event.value != self.encoding:
            self.load(str(event.value))

    # --- encoding -------------------------------------------------------------------------

    def set_source(self, source: str | list[dict]) -> None:
        self.source = source
        self.encode()

    def encode(self) -> None:
        if self.tok is None:
            return
        self._serial += 1
        size = len(self.source) if isinstance(self.source, str) else 0
        if size <= SYNC_CHARS:
            self._show(self._analyse_safely(self.tok, self.source))
        else:
            view = self.view
            self._encode_worker(self.tok, self.source, self._serial,
                                (view.layout_width, view.show_ids))

    def _analyse_safely(self, tok, source) -> Analysis | str:
        try:
            return analyse(tok, source)
        except Exception as e:  # e.g. chat markers this encoding lacks: a message, not a crash
            return f"{type(e).__name__}: {e}"

    @work(thread=True, exclusive=True, group="encode")
    def _encode_worker(self, tok, source, serial: int, shape: tuple[int, bool]) -> None:
        # long texts: the chips are laid out here too, so the UI thread only swaps them in
        analysis = self._analyse_safely(tok, source)
        layout = None
        if isinstance(analysis, Analysis):
            width, show_ids = shape
            layout = (width, show_ids, layout_chips(analysis.chips, width, show_ids))
        self.post_message(self.Encoded(serial, analysis, layout))

    def on_token_column_encoded(self, message: Encoded) -> None:
        message.stop()
        if message.serial == self._serial:  # drop results of texts since replaced
            self._show(message.analysis, message.layout)

    def _show(self, analysis: Analysis | str, layout=None) -> None:
        counts = self.query_one(".tok-counts", Static)
        if isinstance(analysis, str):
            self.analysis = None
            counts.update(f"cannot render this with {self.encoding}")
            self.view.set_chips([], placeholder=analysis)
            return
        self.analysis = analysis
        counts.update(counts_line(analysis))
        self.view.set_chips(analysis.chips, placeholder="type above to see its tokens",
                            layout=layout)

    @on(TokenView.Selected)
    def _selected(self, event: TokenView.Selected) -> None:
        event.stop()
        detail = self.query_one(".tok-detail", Static)
        if event.chip is None or self.tok is None:
            detail.update("")
        else:
            detail.update(describe(self.tok, event.chip, event.index, len(self.view.chips)))


class ChatForm(Vertical):
    """Three one-line inputs: the system, user and assistant turns of a conversation."""

    DEFAULT_CSS = """
    ChatForm { height: auto; border: round $primary 50%; border-title-color: $text-muted; }
    ChatForm > Horizontal { height: 1; }
    ChatForm Label { width: 11; color: $text-muted; }
    ChatForm Input { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        for role in ROLES:
            with Horizontal():
                yield Label(role)
                yield Input(DEFAULT_CHAT[role], id=f"chat-{role}", compact=True)

    @property
    def messages(self) -> list[dict]:
        out = []
        for role in ROLES:
            content = self.query_one(f"#chat-{role}", Input).value
            if content:
                out.append({"role": role, "content": content})
        return out


class TokensPane(Vertical):
    # Keys follow the app-wide table (tui/help.py KEY_TABLE): one key, one verb in every pane.
    BINDINGS = [
        Binding("ctrl+n,f7", "next_example", "Example", priority=True),
        Binding("ctrl+t,f8", "toggle_chat", "Chat", priority=True),
        Binding("ctrl+o,f9", "toggle_compare", "Side by side", priority=True),
        Binding("ctrl+l", "toggle_ids", "Ids", priority=True),
        Binding("ctrl+f", "pick_encoding", "Encoding", priority=True),
        # not priority: in the text box ctrl+c copies the text selected there
        Binding("ctrl+c", "copy_ids", "Copy ids"),
    ]
    # palette commands without a key: (title, help, action)
    PALETTE = [
        ("Copy token ids", "The selected chip's ids (all when none is selected) to the "
         "clipboard (ctrl+c)", "copy_ids"),
        ("Export tokens (JSON)", "Text, encoding, ids and chips into the export folder",
         "export"),
    ]
    DEFAULT_CSS = """
    TokensPane { height: 1fr; }
    TokensPane > #tok-text { height: 7; border: round $primary 50%; }
    TokensPane > #tok-text:focus { border: round $primary; }
    TokensPane > ChatForm { display: none; }
    TokensPane.-chat > ChatForm { display: block; }
    TokensPane.-chat > #tok-text { display: none; }
    TokensPane > #tok-cols { height: 1fr; }
    TokensPane #tok-b { display: none; margin-left: 1; }
    TokensPane.-compare #tok-b { display: block; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.example = 0  # the text box opens on the first example
        self.chat = False
        self.compare = False
        self._debounce: Timer | None = None
        self._choices: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        text = TextArea(EXAMPLES[0][1], id="tok-text", soft_wrap=True)
        text.border_title = "text · ^n examples · ^t chat · ^f encoding"
        yield text
        # The chat form and the second column are built when first asked for: fewer widgets
        # before the first frame (a chat form costs about as much to build as the rest).
        with Horizontal(id="tok-cols"):
            yield TokenColumn("cl100k_base", id="tok-a")

    def _second_default(self) -> str:
        run = getattr(self.app, "run_name", None)
        return run or "o200k_base"

    def on_mount(self) -> None:
        self.query_one("#tok-a", TokenColumn).view.set_chips([], placeholder="loading cl100k_base…")
        # after the first frame: loading cl100k is slow (docs/measurements.md) and must not
        # delay the first paint
        # (the app says when its first frame is drawn; a test app without that: next refresh)
        getattr(self.app, "after_first_frame", self.call_after_refresh)(self._start)

    def _start(self) -> None:
        self._push()
        self.query_one("#tok-a", TokenColumn).load("cl100k_base")
        self._choices_worker()

    @work(thread=True, exclusive=True, group="choices")
    def _choices_worker(self) -> None:
        try:
            choices = encoding_choices()
        except Exception as e:
            self.app.call_from_thread(self.app.notify, str(e), severity="error")
            return
        self.app.call_from_thread(self._set_choices, choices)

    def _set_choices(self, choices: list[tuple[str, str]]) -> None:
        self._choices = choices
        for column in self.query(TokenColumn):
            column.set_choices(choices)

    # --- source text ----------------------------------------------------------------------

    @property
    def source(self) -> str | list[dict]:
        if self.chat:
            return self.query_one(ChatForm).messages
        return self.query_one("#tok-text", TextArea).text

    @on(TextArea.Changed, "#tok-text")
    @on(Input.Changed, "ChatForm Input")
    def _edited(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(DEBOUNCE_S, self._push)

    def _push(self) -> None:
        source = self.source
        for column in self.query(TokenColumn):
            if self.compare or column.id == "tok-a":
                column.set_source(source)

    # --- actions --------------------------------------------------------------------------

    def action_next_example(self) -> None:
        self.example = (self.example + 1) % len(EXAMPLES)
        name, text = EXAMPLES[self.example]
        if self.chat:
            self.query_one("#chat-user", Input).value = text
        else:
            self.query_one("#tok-text", TextArea).text = text
        self._push()
        self.notify(f"Example: {name}", timeout=2)

    async def action_toggle_chat(self) -> None:
        if not self.query(ChatForm):
            form = ChatForm(id="tok-chat")
            form.border_title = "conversation"
            await self.mount(form, before="#tok-cols")
        self.chat = not self.chat
        self.set_class(self.chat, "-chat")
        target = "#chat-user" if self.chat else "#tok-text"
        self.query_one(target).focus()
        self._push()

    async def action_toggle_compare(self) -> None:
        if not self.query("#tok-b"):
            second = TokenColumn(self._second_default(), id="tok-b")
            await self.query_one("#tok-cols").mount(second)
            if self._choices:
                second.set_choices(self._choices)
        self.compare = not self.compare
        self.set_class(self.compare, "-compare")
        second = self.query_one("#tok-b", TokenColumn)
        if self.compare:
            if second.tok is None:
                second.load(second.encoding)
            second.set_source(self.source)

    def action_toggle_ids(self) -> None:
        for view in self.query(TokenView):
            view.show_ids = not view.show_ids

    def action_pick_encoding(self) -> None:
        picker = self.query_one("#tok-a-picker", Select)
        picker.focus()
        picker.expanded = True

    @on(Picker.Closed)
    def _picker_closed(self, event: Picker.Closed) -> None:
        """After choosing an encoding, typing goes to the text again (not to the list)."""
        event.stop()
        if self.app.focused is event.picker:
            self.focus_source()

    def focus_source(self) -> None:
        self.query_one("#chat-user" if self.chat else "#tok-text").focus()

    # --- copy and export ------------------------------------------------------------------

    def _shown_column(self) -> TokenColumn:
        """The column the user is in (the focused one), else the first."""
        focused = self.app.focused
        for column in self.query(TokenColumn):
            if focused is not None and column in focused.ancestors_with_self:
                return column
        return self.query_one("#tok-a", TokenColumn)

    def action_copy_ids(self) -> None:
        column = self._shown_column()
        if column.analysis is None:
            self.notify("nothing to copy yet", severity="warning")
            return
        chip = column.view.selected_chip
        ids = list(chip.ids) if chip is not None else column.analysis.ids
        self.app.copy_to_clipboard(" ".join(map(str, ids)))
        what = f"the ids of {chip.text!r}" if chip is not None else "all ids"
        self.notify(f"copied {what}: {len(ids)} id{'s' if len(ids) != 1 else ''} "
                    f"({column.encoding})", timeout=3)

    def action_export(self) -> None:
        import json

        from tui.exports import stamped, write_export

        column = self._shown_column()
        if column.analysis is None:
            self.notify("nothing to export yet", severity="warning")
            return
        a = column.analysis
        data = {"encoding": column.encoding, "source": self.source, "chat": a.chat,
                "ids": a.ids, "n_chars": a.n_chars, "n_bytes": a.n_bytes,
                "chips": [{"text": c.text, "ids": list(c.ids), "special": c.special}
                          for c in a.chips]}
        try:
            path = write_export(stamped(f"tokens-{column.encoding}", ".json"),
                                json.dumps(data, ensure_ascii=False, indent=1))
        except OSError as e:
            self.notify(f"could not export: {e}", severity="error")
            return
        self.notify(f"tokens exported to {path}", title="Export")
