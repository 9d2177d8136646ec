"""One column of the Compare pane: which model fills it, what it said, and how well it did.

The border's title names the column's seed (each column samples with its own). Under the
answer, the judge's mark and its reason ("✗ contradicts itself: says Jukami, also Darzothi");
where two columns said the same thing up to a point, the first token where this column went
its own way is highlighted, and a column identical to another says so.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Digits, Label, Select, Static

DIVERGE_STYLE = "bold black on yellow"
MARK_STYLE = {"✓": "bold green", "✗": "bold red", "—": "dim"}


def column_key(run: str, stage: str) -> str:
    """The value of a column picker: ``run/stage``."""
    return f"{run}/{stage}"


def split_key(key: str) -> tuple[str, str]:
    run, _, stage = key.rpartition("/")
    return run, stage


def verdict_text(verdict) -> Text:
    """``✓ says Belha`` / ``✗ answers 81, not 82`` / ``— not checkable``."""
    if verdict is None:
        return Text("")
    return Text.assemble((verdict.mark, MARK_STYLE[verdict.mark]), " ",
                         (verdict.reason, "dim" if verdict.correct is None else ""))


class CompareColumn(Vertical):
    """A model picker, a status line (tokens, time), the streamed text, the judge's verdict with
    its reason, and a pass rate (×N) or a family tally with its interval."""

    DEFAULT_CSS = """
    CompareColumn {
        border: round $primary-darken-2;
        border-title-color: $text-muted;
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
    CompareColumn .verdict { height: auto; max-height: 4; display: none; }
    CompareColumn.-judged .verdict { display: block; }
    CompareColumn .passrate { height: auto; display: none; }
    CompareColumn.-passrate .passrate { display: block; }
    CompareColumn .passrate Digits { width: auto; color: $accent; }
    CompareColumn .passrate Label { padding: 0 0 0 1; }
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
        self.pieces: list[str] = []  # the answer's token texts
        self.verdict = None  # engine.data.judge.Verdict of `text` (None before an answer)
        self.seed: int | None = None  # the seed this column sampled with
        self.diverges_at: int | None = None  # token index highlighted (None: none)
        self.same_as: str | None = None  # the column whose text this one equals
        self.pass_rate: tuple[int, int] | None = None  # (passed, sampled) of the last ×N
        self.samples: list[str] = []  # the answers of the last ×N
        self.sample_verdicts: list = []
        self.family: list[tuple[object, str, object]] = []  # (problem, answer, verdict)
        self.family_label = ""
        self._stopped = False

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
        yield Static("", classes="verdict")
        with Horizontal(classes="passrate"):
            yield Digits("", id=f"digits-{self.index}")
            yield Label("", classes="passlabel")

    # --- what the pane calls -------------------------------------------------------------

    @property
    def key(self) -> str | None:
        value = self.query_one(Select).value
        return value if isinstance(value, str) else None

    @property
    def stage(self) -> str:
        return split_key(self.key)[1] if self.key else f"column {self.index + 1}"

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

    def set_seed(self, seed: int | None, note: str = "") -> None:
        self.seed = seed
        self.border_title = (f"seed {seed}" if seed is not None else "") + note

    def begin(self, note: str = "", seed: int | None = None, seed_note: str = "") -> None:
        """Clear for a new answer."""
        self.text, self.pieces, self.verdict, self.pass_rate = "", [], None, None
        self.samples, self.sample_verdicts, self.family = [], [], []
        self.diverges_at = self.same_as = None
        self.remove_class("-done", "-passrate", "-judged")
        self.query_one(".text", Static).update("")
        self.query_one(".verdict", Static).update("")
        self.set_seed(seed, seed_note)
        self.set_status(note or "waiting…")

    def append(self, chunk: str, n_tokens: int, elapsed_s: float) -> None:
        self.text += chunk
        self.query_one(".text", Static).update(Text(self.text))
        self.query_one(".body", VerticalScroll).scroll_end(animate=False)
        self.set_status(f"{n_tokens} tok · {elapsed_s:.2f} s · streaming")

    def finish(self, text: str, n_tokens: int, elapsed_s: float, verdict, stopped: bool,
               pieces: list[str] | None = None) -> None:
        """The final answer and the judge's verdict on it (``verdict.correct`` None: nothing to
        check)."""
        self.text, self.verdict, self._stopped = text, verdict, stopped
        self.pieces = pieces if pieces is not None else [text]
        self._draw_text()
        mark, cls = "", ""
        if verdict is not None:
            mark = f" · {verdict.mark}"
            cls = {True: "right", False: "wrong"}.get(verdict.correct, "")
        self.set_status(f"{n_tokens} tok · {elapsed_s:.2f} s{mark}", cls)
        self._draw_verdict()
        self.add_class("-done")

    def _draw_text(self) -> None:
        shown = Text()
        for i, piece in enumerate(self.pieces):
            shown.append(piece, style=DIVERGE_STYLE if i == self.diverges_at else "")
        if self._stopped:
            shown.append(" ⏎", style="dim")  # the model ended its turn / document itself
        self.query_one(".text", Static).update(shown)

    def _draw_verdict(self) -> None:
        text = verdict_text(self.verdict)
        if self.same_as:
            text.append(f"\nsame text as {self.same_as}", style="italic")
        elif self.diverges_at is not None:
            text.append(f"\nleaves the others at token {self.diverges_at + 1}", style="italic")
        self.query_one(".verdict", Static).update(text)
        self.set_class(bool(text.plain), "-judged")

    def mark_divergence(self, index: int | None, same_as: str | None) -> None:
        """Highlight the token where this column went its own way (or say it equals another)."""
        self.diverges_at, self.same_as = index, same_as
        self._draw_text()
        self._draw_verdict()

    def show_samples(self, samples: list[str], verdicts: list, elapsed_s: float) -> None:
        """The N answers of "×N", each with its mark (wrapped, not cut), and the pass rate."""
        self.samples, self.sample_verdicts = samples, verdicts
        lines = Text()
        for sample, verdict in zip(samples, verdicts, strict=True):
            lines.append(verdict.mark + " ", style=MARK_STYLE[verdict.mark])
            lines.append(" ".join(sample.split()) or "(nothing)")
            if verdict.correct is False:
                lines.append(f" — {verdict.reason}", style="dim")
            lines.append("\n")
        self.query_one(".text", Static).update(lines)
        self.set_status(f"×{len(samples)} samples · {elapsed_s:.2f} s")
        self.add_class("-done")
        passed = sum(1 for v in verdicts if v.correct)
        if any(v.correct is not None for v in verdicts):
            self.show_pass_rate(passed, len(samples), elapsed_s)

    def show_pass_rate(self, passed: int, total: int, elapsed_s: float | None = None,
                       what: str = "pass") -> None:
        from engine.api import wilson

        self.pass_rate = (passed, total)
        pct = round(100 * passed / total) if total else 0
        lo, hi = wilson(passed, total)
        self.query_one(Digits).update(str(pct))
        took = f" · {elapsed_s:.1f} s" if elapsed_s is not None else ""
        self.query_one(".passlabel", Label).update(
            f"% {what} {passed}/{total}{took}\n95%: {100 * lo:.0f}–{100 * hi:.0f}%")
        self.add_class("-passrate")

    # --- family mode ---------------------------------------------------------------------

    def begin_family(self, label: str, total: int) -> None:
        """Family mode decodes greedily, as the report card does: no seed to show."""
        self.begin(f"{label}: 0/{total}…", None, "greedy")
        self.family_label = label

    def add_family_step(self, i: int, total: int, problem, answer: str, verdict) -> None:
        """One more problem answered: its line (mark, question, reason) and the live tally."""
        self.family.append((problem, answer, verdict))
        lines = Text()
        for p, _, v in self.family:
            lines.append(v.mark + " ", style=MARK_STYLE[v.mark])
            lines.append(" ".join(p.prompt.split()))
            lines.append(f" — {v.reason}\n", style="dim")
        self.query_one(".text", Static).update(lines)
        self.query_one(".body", VerticalScroll).scroll_end(animate=False)
        passed = sum(1 for _, _, v in self.family if v.correct)
        done = len(self.family)
        self.set_status(f"{self.family_label} {done}/{total}" + ("…" if done < total else ""))
        self.show_pass_rate(passed, done, what="right")
        if done >= total:
            self.add_class("-done")

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, str):
            run, stage = split_key(event.value)
            self.post_message(self.Picked(self, run, stage))
