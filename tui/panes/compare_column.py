"""One column of the Compare pane: which model fills it, what it said, and how well it did."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Digits, Label, Select, Static


def column_key(run: str, stage: str) -> str:
    """The value of a column picker: ``run/stage``."""
    return f"{run}/{stage}"


def split_key(key: str) -> tuple[str, str]:
    run, _, stage = key.rpartition("/")
    return run, stage


class CompareColumn(Vertical):
    """A model picker, a status line (tokens, time, verdict), the streamed text and a pass rate."""

    DEFAULT_CSS = """
    CompareColumn {
        border: round $primary-darken-2;
        padding: 0 1;
        height: 1fr;
        min-width: 24;
    }
    CompareColumn.-done { border: round $primary; }
    CompareColumn Select { width: 1fr; }
    CompareColumn .status { height: 1; color: $text-muted; }
    CompareColumn .status.-right { color: $success; text-style: bold; }
    CompareColumn .status.-wrong { color: $error; text-style: bold; }
    CompareColumn .body { height: 1fr; }
    CompareColumn.-samples .text { text-wrap: nowrap; text-overflow: ellipsis; }
    CompareColumn .passrate { height: auto; display: none; }
    CompareColumn.-passrate .passrate { display: block; }
    CompareColumn .passrate Digits { width: auto; color: $accent; }
    CompareColumn .passrate Label { padding: 1 0 0 1; }
    """

    class Picked(Message):
        """The user chose another run × stage for this column."""

        def __init__(self, column: CompareColumn, run: str, stage: str):
            super().__init__()
            self.column = column
            self.run = run
            self.stage = stage

    def __init__(self, index: int, choices: list[str], value: str | None, **kwargs):
        super().__init__(**kwargs)
        self.index = index
        self._choices = choices
        self._value = value
        self.text = ""  # what the model said (stop token excluded)
        self.verdict: float | None = None  # engine.tasks.verify of `text`, None if not checkable
        self.pass_rate: tuple[int, int] | None = None  # (passed, sampled) of the last ×N
        self.samples: list[str] = []  # the answers of the last ×N

    def compose(self) -> ComposeResult:
        yield Select(
            [(c, c) for c in self._choices],
            value=self._value if self._value in self._choices else Select.NULL,
            prompt="pick a run/stage",
            compact=True,
            id=f"pick-{self.index}",
        )
        yield Label("", classes="status")
        with VerticalScroll(classes="body"):
            yield Static("", classes="text")
        with Horizontal(classes="passrate"):
            yield Digits("", id=f"digits-{self.index}")
            yield Label("", classes="passlabel")

    # --- what the pane calls -------------------------------------------------------------

    @property
    def key(self) -> str | None:
        value = self.query_one(Select).value
        return value if isinstance(value, str) else None

    def set_choices(self, choices: list[str], value: str | None) -> None:
        self._choices, self._value = choices, value
        select = self.query_one(Select)
        with select.prevent(Select.Changed):
            select.set_options([(c, c) for c in choices])
            if value in choices:
                select.value = value

    def set_status(self, status: str, verdict: str = "") -> None:
        label = self.query_one(".status", Label)
        label.update(status)
        label.set_class(verdict == "right", "-right")
        label.set_class(verdict == "wrong", "-wrong")

    def begin(self, note: str = "") -> None:
        """Clear for a new answer."""
        self.text, self.verdict, self.pass_rate, self.samples = "", None, None, []
        self.remove_class("-done", "-passrate", "-samples")
        self.query_one(".text", Static).update("")
        self.set_status(note or "waiting…")

    def append(self, chunk: str, n_tokens: int, elapsed_s: float) -> None:
        self.text += chunk
        self.query_one(".text", Static).update(Text(self.text))
        self.query_one(".body", VerticalScroll).scroll_end(animate=False)
        self.set_status(f"{n_tokens} tok · {elapsed_s:.2f} s · streaming")

    def finish(self, text: str, n_tokens: int, elapsed_s: float, verdict: float | None,
               stopped: bool) -> None:
        """The final answer; `verdict` is the verifier's score (None: nothing to check)."""
        self.text, self.verdict = text, verdict
        shown = Text(text)
        if stopped:
            shown.append(" ⏎", style="dim")  # the model ended its turn / document itself
        self.query_one(".text", Static).update(shown)
        mark, cls = "", ""
        if verdict is not None:
            mark, cls = (" · ✓", "right") if verdict >= 1.0 else (" · ✗", "wrong")
        self.set_status(f"{n_tokens} tok · {elapsed_s:.2f} s{mark}", cls)
        self.add_class("-done")

    def show_samples(self, samples: list[str], verdicts: list[float], elapsed_s: float) -> None:
        """The N answers of "×N", one line each with its mark, and the pass rate in big digits."""
        self.samples = samples
        lines = Text()
        for sample, verdict in zip(samples, verdicts, strict=True):
            mark = ("✓ ", "green") if verdict >= 1.0 else ("✗ ", "red")
            first_line = " ".join(sample.split()) or "(nothing)"
            lines.append(*mark).append(first_line[:200] + "\n")
        self.add_class("-samples")  # one line per sample: no wrapping
        self.query_one(".text", Static).update(lines)
        self.set_status(f"×{len(samples)} samples · {elapsed_s:.2f} s")
        self.add_class("-done")
        passed = sum(1 for v in verdicts if v >= 1.0)
        self.show_pass_rate(passed, len(samples), elapsed_s)

    def show_pass_rate(self, passed: int, total: int, elapsed_s: float) -> None:
        self.pass_rate = (passed, total)
        pct = round(100 * passed / total) if total else 0
        self.query_one(Digits).update(str(pct))
        self.query_one(".passlabel", Label).update(f"% pass\n{passed}/{total} in {elapsed_s:.1f} s")
        self.add_class("-passrate")

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, str):
            run, stage = split_key(event.value)
            self.post_message(self.Picked(self, run, stage))
