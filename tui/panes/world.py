"""The world at hand: every country, city, person and animal of a run's world, and the people
who exist nowhere, each marked known (in SFT rows: ``train``), held out (``dev``/``test``: read
only in pretraining) or unknown (in no document at all).

A row's question (the template wording of its kind, engine/data/wordings.py) can be asked in
Compare: Enter closes the browser and puts the question in Compare's prompt box.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from engine.api import ask_about

STATUS_STYLE = {"known": "green", "held-out": "yellow", "unknown": "magenta"}


@dataclass(frozen=True)
class WorldRow:
    kind: str  # country, city, person, animal, nobody
    name: str
    status: str  # known, held-out or unknown
    split: str  # train, dev or test (for unknown people: their eval split)
    facts: str  # what the world says of it, in brief
    question: str  # what "ask in Compare" puts in the prompt box

    @property
    def label(self) -> str:
        return self.status if self.status == "known" else f"{self.status} ({self.split})"


def _status(split: str | None) -> str:
    return "known" if split == "train" else "held-out"


def world_rows(world) -> list[WorldRow]:
    """Every entity of ``world`` with its status and a template question about it."""
    rows: list[WorldRow] = []
    capitals = {c.capital: c for c in world.countries}
    residents: dict[str, list] = {}
    for p in world.people:
        residents.setdefault(p.city, []).append(p)
    for c in world.countries:
        split = world.split.get(c.name, "train")
        rows.append(WorldRow("country", c.name, _status(split), split,
                             f"capital {c.capital} · river {c.river} · {c.language} · "
                             f"founded {c.founded}", ask_about("capital", c.name)))
    for city in world.cities:
        # a city has no split of its own: its row asks about the entity it is a fact of
        if city.name in capitals:
            subject, kind, what = city.country, "capital", f"capital of {city.country}"
        elif city.name in residents:
            subject, kind = residents[city.name][0].name, "lives"
            what = f"in {city.country} · home of {subject}"
        else:
            subject, kind, what = city.country, "capital", f"in {city.country}"
        split = world.split.get(subject, "train")
        rows.append(WorldRow("city", city.name, _status(split), split, what,
                             ask_about(kind, subject)))
    for p in world.people:
        split = world.split.get(p.name, "train")
        rows.append(WorldRow("person", p.name, _status(split), split,
                             f"born {p.born} · lives in {p.city} · {p.profession} · "
                             f"likes {p.food}", ask_about("lives", p.name)))
    for a in world.animals:
        split = world.split.get(a.name, "train")
        rows.append(WorldRow("animal", a.name, _status(split), split,
                             f"lives in the {a.habitat} · eats {a.diet}",
                             ask_about("habitat", a.name)))
    for name in world.unknown_people:
        rows.append(WorldRow("nobody", name, "unknown", world.unknown_split.get(name, "test"),
                             "exists nowhere: the right answer is \"I don't know\"",
                             ask_about("lives", name)))
    return rows


class WorldScreen(ModalScreen[str | None]):
    """The world browser: a filter box and one row per entity; Enter asks in Compare."""

    DEFAULT_CSS = """
    WorldScreen { align: center middle; }
    WorldScreen > Vertical {
        width: 96%; height: 92%; border: round $primary; background: $surface; padding: 0 1;
    }
    WorldScreen #world-title { height: auto; }
    WorldScreen #world-filter { margin: 0; }
    WorldScreen DataTable { height: 1fr; }
    WorldScreen #world-hint { height: auto; color: $text-muted; }
    """

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("enter", "ask", "Ask in Compare", show=False),
    ]

    def __init__(self, world, **kwargs):
        super().__init__(**kwargs)
        self.world = world
        self.rows = world_rows(world)
        self.shown: list[WorldRow] = []

    def compose(self) -> ComposeResult:
        counts = {s: sum(r.status == s for r in self.rows) for s in STATUS_STYLE}
        title = Text.assemble((f"The world of seed {self.world.seed}", "bold"), "  ")
        for status, n in counts.items():
            title.append(f"{n} {status}  ", style=STATUS_STYLE[status])
        with Vertical():
            yield Static(title, id="world-title")
            yield Input(placeholder="filter: a name, a kind (person, city…) or a status",
                        compact=True, id="world-filter")
            yield DataTable(id="world-table", cursor_type="row", zebra_stripes=True)
            yield Static("enter: ask in Compare · esc: close · known: in SFT rows · held-out: "
                         "read only in pretraining · unknown: in no document", id="world-hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("kind", "name", "status", "facts")
        self._fill("")
        table.focus()

    def _fill(self, needle: str) -> None:
        table = self.query_one(DataTable)
        table.clear()
        needle = needle.strip().casefold()
        self.shown = [r for r in self.rows if not needle or needle in
                      f"{r.kind} {r.name} {r.label} {r.facts}".casefold()]
        for i, r in enumerate(self.shown):
            table.add_row(r.kind, r.name, Text(r.label, style=STATUS_STYLE[r.status]), r.facts,
                          key=str(i))

    @on(Input.Changed, "#world-filter")
    def _filter(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted, "#world-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_ask()

    def highlighted(self) -> WorldRow | None:
        table = self.query_one(DataTable)
        if not self.shown or table.cursor_row < 0:
            return None
        return self.shown[min(table.cursor_row, len(self.shown) - 1)]

    def action_ask(self) -> None:
        row = self.highlighted()
        if row is not None:
            self.dismiss(row.question)

    def action_close(self) -> None:
        self.dismiss(None)
