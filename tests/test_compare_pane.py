"""The Compare pane on a small real run: curated prompts, three streaming columns, the judge's
✓/✗ with reasons, seeds per column, divergence, ×N, family mode, world browser, export."""

from __future__ import annotations

import json
import re
import threading

import pytest

from tui.panes.compare_fewshot import fewshot_answer, fewshot_document
from tui.panes.compare_runner import column_seed, user_text

pytestmark = pytest.mark.anyio


def _scripted_client_class():
    from engine.api import ModelClient
    from engine.model.sampler import TokenEvent

    class ScriptedClient(ModelClient):
        """The real models and tokenizer, but stream_many answers with scripted texts for the
        stages in ``script`` (a word per token, then the column's first stop id): the judge's
        marks can then be checked against replies of a known shape."""

        script: dict[str, str] = {}

        def stream_many(self, requests, cancel=None):
            if not self.script:
                yield from super().stream_many(requests, cancel)
                return
            for i, req in enumerate(requests):
                self._get(req.run, req.stage)
                pieces = re.findall(r"\s*\S+|\s+", self.script[req.stage])
                for k, piece in enumerate(pieces):
                    yield i, TokenEvent(k, 5, piece, 1.0)
                if req.stop_ids:
                    yield i, TokenEvent(len(pieces), req.stop_ids[0], "", 1.0)

    return ScriptedClient


@pytest.fixture
def app_factory(micro_run, monkeypatch, tmp_path):
    """DeepdiveApp opened on Compare for the test run, with a fresh model client (which can
    be given scripted replies: ``app_factory.client.script = {stage: text}``)."""
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(micro_run.parent))
    monkeypatch.setenv("DEEPDIVE_EXPORT_DIR", str(tmp_path / "exports"))
    from tui.app import DeepdiveApp

    client = _scripted_client_class()(device="cpu")
    client.script = {}
    monkeypatch.setattr("engine.model.client.shared_client", lambda: client)

    def make():
        return DeepdiveApp(start_tab="compare", run=micro_run.name)

    make.client = client
    make.run = micro_run.name
    return make


async def _ready(app, pilot):
    """Wait until the world's prompts are listed and the three models are loaded."""
    from tui.panes.compare import ComparePane

    pane = app.query_one(ComparePane)
    for _ in range(400):
        if pane.problems and all("ready" in str(c.query_one(".status").render())
                                 for c in pane.columns):
            return pane
        await pilot.pause(0.05)
    raise AssertionError("the pane never became ready: "
                         f"{[str(c.query_one('.status').render()) for c in pane.columns]}")


async def _finished(app, pilot, pane):
    await app.workers.wait_for_complete()
    for _ in range(100):
        if all(c.has_class("-done") for c in pane.columns):
            return
        await pilot.pause(0.05)
    raise AssertionError("columns did not finish: "
                         f"{[str(c.query_one('.status').render()) for c in pane.columns]}")


def _expected_stream(client, run, stage, ids, settings, stops) -> str:
    text = ""
    for event in client.stream(run, stage, ids, settings, stops, threading.Event()):
        if event.id in stops:
            break
        text += event.text
    return text


async def test_curated_prompt_fills_the_box_and_three_columns_stream(app_factory):
    from engine.tokens.chat import render_prompt
    from tui.panes.compare_runner import stop_ids

    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _ready(app, pilot)
        assert [c.key for c in pane.columns] == [f"{app_factory.run}/{s}"
                                                  for s in ("base", "sft", "rl")]
        options = pane.query_one("#compare-curated")
        options.focus()
        options.highlighted = 2
        await pilot.press("enter")
        problem = pane.problems[2]
        assert pane.query_one("#compare-prompt").value == user_text(problem)
        await _finished(app, pilot, pane)
        client, run = app_factory.client, app_factory.run
        tok = client.tokenizer(run)
        ids, stops = render_prompt(tok, problem.messages), stop_ids(tok)
        for i, (column, stage) in enumerate(zip(pane.columns, ("base", "sft", "rl"),
                                                strict=True)):
            status = str(column.query_one(".status").render())
            assert " tok · " in status and " s" in status
            # each column shows exactly what its model continues from the chat-formatted
            # prompt, sampled with the column's own seed
            settings = pane.settings.sample_settings(seed=column_seed(pane.settings.seed, i))
            assert column.text == _expected_stream(client, run, stage, ids, settings, stops)
        # three different models: their answers are not all the same text
        assert len({c.text for c in pane.columns}) > 1


def _shown(widget) -> str:
    """What a Static/Label shows, as plain text."""
    return str(widget.render())


async def test_verdicts_are_the_judges_on_real_answers(app_factory):
    from engine.data.judge import judge

    app = app_factory()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _ready(app, pilot)
        checkable = [p for p in pane.problems if p.answer]
        assert checkable, "curated prompts must include checkable ones"
        pane.query_one("#compare-prompt").value = user_text(checkable[0])
        await pilot.press("ctrl+g")
        await _finished(app, pilot, pane)
        for column in pane.columns:
            assert column.verdict == judge(checkable[0], column.text)
            assert column.verdict.mark in _shown(column.query_one(".status"))
            assert column.verdict.reason in _shown(column.query_one(".verdict"))
        # a prompt the engine does not recognise has nothing to check: "—", never ✓/✗
        pane.query_one("#compare-prompt").value = "tell me a story"
        await pilot.press("ctrl+g")
        await _finished(app, pilot, pane)
        for column in pane.columns:
            assert column.verdict.correct is None
            status = _shown(column.query_one(".status"))
            assert "—" in status and "✓" not in status and "✗" not in status
            assert "not checkable" in _shown(column.query_one(".verdict"))


async def test_times_n_shows_pass_rates_of_n_samples(app_factory, monkeypatch):
    import importlib

    from engine.data.judge import Verdict
    from tui.panes.compare_runner import stop_ids

    judge_mod = importlib.import_module("engine.data.judge")

    app = app_factory()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _ready(app, pilot)
        problem = next(p for p in pane.problems if p.answer)
        pane.query_one("#compare-prompt").value = user_text(problem)
        pane.set_setting("n_samples", 6)
        pane.set_setting("max_tokens", 24)
        # a judge that passes about half of any model's answers, so the rate is not 0 or 1
        monkeypatch.setattr(judge_mod, "judge",
                            lambda p, r: Verdict(len(r) % 2 == 0, f"length {len(r)}"))
        await pilot.press("alt+x")
        await _finished(app, pilot, pane)
        client, run = app_factory.client, app_factory.run
        tok = client.tokenizer(run)
        from engine.tokens.chat import render_prompt

        ids, stops = render_prompt(tok, problem.messages), stop_ids(tok)
        for i, (column, stage) in enumerate(zip(pane.columns, ("base", "sft", "rl"),
                                                strict=True)):
            assert len(column.samples) == 6
            settings = pane.settings.sample_settings(seed=column_seed(pane.settings.seed, i))
            rows = client.generate_batch(run, stage, [ids] * 6, settings, stops)
            assert column.samples == [tok.decode([i for i in r if i not in stops]) for r in rows]
            passed = sum(len(s) % 2 == 0 for s in column.samples)
            assert column.pass_rate == (passed, 6)
            digits = column.query_one("Digits")
            assert digits.value == str(round(100 * passed / 6))
            assert column.has_class("-passrate") and digits.display


async def test_fewshot_toggle_gives_the_base_column_a_qa_document(app_factory):
    from engine.tokens.chat import render_document
    from tui.panes.compare_runner import stop_ids

    app = app_factory()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _ready(app, pilot)
        assert pane.examples, "few-shot examples come from the world's facts"
        problem = pane.problems[0]
        pane.query_one("#compare-prompt").value = user_text(problem)
        await pilot.press("ctrl+t")
        assert "few-shot" in _shown(pane.query_one("#compare-mode"))
        await pilot.press("ctrl+g")
        await _finished(app, pilot, pane)
        client, run = app_factory.client, app_factory.run
        tok = client.tokenizer(run)
        doc = fewshot_document(pane.examples, user_text(problem))
        assert doc.endswith(f"Q: {user_text(problem)}\nA:") and doc.count("Q: ") > 1
        expected = _expected_stream(client, run, "base", render_document(tok, doc),
                                    pane.settings.sample_settings(), stop_ids(tok))
        assert pane.columns[0].text == fewshot_answer(expected)[0]


async def test_reroll_draws_a_new_seed_and_shows_it(app_factory):
    app = app_factory()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _ready(app, pilot)
        pane.query_one("#compare-prompt").value = user_text(pane.problems[0])
        before = pane.settings.seed
        await pilot.press("ctrl+r")
        await _finished(app, pilot, pane)
        seed = pane.settings.seed
        assert seed != before
        assert pane.query_one("#set-seed").value == str(seed)
        # every column shows its own seed, derived from the pane's: any answer can be redrawn
        assert [c.border_title for c in pane.columns] == [
            f"seed {column_seed(seed, i)}" for i in range(3)]


async def test_columns_fit_side_by_side_at_80x24(app_factory):
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _ready(app, pilot)
        regions = [c.region for c in pane.columns]
        assert all(r.width >= 24 and r.height >= 6 for r in regions)
        assert all(r.right <= 80 and r.bottom <= 24 for r in regions)
        assert len({r.x for r in regions}) == 3  # side by side, not hidden behind each other


def test_fewshot_answer_ends_at_the_next_question():
    assert fewshot_answer(" Paris.\n\nQ: What is") == ("Paris.", True)
    assert fewshot_answer(" Par") == ("Par", False)
    doc = fewshot_document([("Who is A?", "A is a cat."), ("Q2?", "A2.")], "Who is B?")
    assert doc.endswith("Q: Q2?\nA: A2.\n\nQ: Who is B?\nA:")



# --- issue 15: the judge's marks, seeds, divergence, controls, family mode, world, export -------

async def _run_scripted(app, pilot, pane, prompt: str, script: dict[str, str]) -> None:
    app_client = pane.client
    app_client.script = script
    pane.query_one("#compare-prompt").value = prompt
    await pilot.press("ctrl+g")
    await _finished(app, pilot, pane)


async def test_judge_table_through_the_pane(app_factory):
    """Contradiction, the few-shot base, a typed test wording and a prompt the engine does not
    know: every column's mark and reason are the judge's."""
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _ready(app, pilot)
        known = next(p for p in pane.problems if p.family == "fact_known")
        subject = known.key.split(":")[0]
        right, rival = known.answer, next(r for r in known.rivals if r != known.answer)
        await pilot.press("ctrl+t")  # the base column answers a few-shot document
        await _run_scripted(app, pilot, pane, user_text(known), {
            "base": f" The capital of {subject} is {right}.\n\nQ: Who are you?",
            "sft": f"The capital of {subject} is {right}, also {rival}.",
            "rl": f"The capital of {subject} is {rival}.",
        })
        base, sft, rl = pane.columns
        # the few-shot base saying the right sentence is right: the judge reads content
        assert base.text == f"The capital of {subject} is {right}."
        assert base.verdict.correct is True and "✓" in _shown(base.query_one(".status"))
        assert sft.verdict.correct is False
        assert "✗" in _shown(sft.query_one(".status"))
        assert f"contradicts itself: says {right}, also {rival}" in " ".join(
            _shown(sft.query_one(".verdict")).split())
        assert rl.verdict.correct is False and f"says {rival}, not {right}" in " ".join(
            _shown(rl.query_one(".verdict")).split())
        await pilot.press("ctrl+t")

        # a question typed in a test wording is recognised and judged
        await _run_scripted(app, pilot, pane, f"Tell me the capital of {subject}.", {
            "base": "", "sft": f"It is {right}.", "rl": f"{rival}, I think."})
        assert pane.problem.family == "fact_known" and pane.problem.answer == right
        assert [c.verdict.mark for c in pane.columns] == ["✗", "✓", "✗"]
        assert "gives no answer" in _shown(base.query_one(".verdict")) or \
            "does not say" in _shown(base.query_one(".verdict"))

        await _run_scripted(app, pilot, pane, "what's 12 plus 34", {
            "base": "46", "sft": "12 + 34 = 46\nAnswer: 46", "rl": "Answer: 45"})
        assert [c.verdict.mark for c in pane.columns] == ["✓", "✓", "✗"]
        assert "answers 45, not 46" in _shown(rl.query_one(".verdict"))

        # not checkable: "—" and the reason, never a ✓/✗
        await _run_scripted(app, pilot, pane, "write a poem about rivers", {
            s: f"The capital of {subject} is {right}." for s in ("base", "sft", "rl")})
        for column in pane.columns:
            assert column.verdict.mark == "—"
            assert "not checkable" in _shown(column.query_one(".verdict"))


async def test_divergence_is_highlighted_and_identical_columns_say_so(app_factory):
    from tui.panes.compare_column import DIVERGE_STYLE

    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _ready(app, pilot)
        await _run_scripted(app, pilot, pane, "say something", {
            "base": "Once upon a time.",
            "sft": "The capital of Xy is Jukami.",
            "rl": "The capital of Xy is Darzothi."})
        base, sft, rl = pane.columns
        assert rl.pieces[:5] == sft.pieces[:5] and rl.pieces[5] != sft.pieces[5]
        assert rl.diverges_at == 5 and sft.diverges_at == 5 and base.diverges_at is None
        shown = rl.query_one(".text").content
        styled = [shown.plain[s.start:s.end] for s in shown.spans if str(s.style) == DIVERGE_STYLE]
        assert styled == [" Darzothi."]
        assert "leaves the others at token 6" in _shown(rl.query_one(".verdict"))
        # SFT and RL saying the same: said, not left to look like a copied column
        await _run_scripted(app, pilot, pane, "say something", {
            "base": "Once upon a time.", "sft": "Same words.", "rl": "Same words."})
        assert rl.same_as == "sft" and sft.same_as == "rl"
        assert "same text as sft" in _shown(rl.query_one(".verdict"))
        assert len({c.seed for c in pane.columns}) == 3


async def test_presenter_controls_in_the_pane_and_the_palette(app_factory):
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _ready(app, pilot)
        await pilot.press("alt+t")
        assert app.focused is pane.query_one("#set-temperature")
        await pilot.press("ctrl+a", "ctrl+k", *"1.5", "enter")
        assert pane.settings.temperature == 1.5
        assert app.focused is pane.query_one("#compare-prompt")
        for key, field, value in (("alt+m", "max_tokens", "5"), ("alt+s", "seed", "77"),
                                  ("alt+n", "n_samples", "3"), ("alt+k", "family_k", "4")):
            await pilot.press(key, "ctrl+a", "ctrl+k", *value, "enter")
            assert getattr(pane.settings, field) == int(value)
        # an out-of-range value is not taken; the box shows what is in force
        await pilot.press("alt+n", "ctrl+a", "ctrl+k", *"999", "enter")
        assert pane.settings.n_samples == 3 and pane.query_one("#set-n").value == "3"
        # the palette lists the pane's setting actions
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Compare: Set temperature", "Compare: Set seed", "Compare: Set max tokens",
                "Compare: Set ×N", "Compare: Family ×K", "Compare: World",
                "Compare: Export"} <= titles
        pane.query_one("#compare-prompt").value = user_text(pane.problems[0])
        await pilot.press("ctrl+g")
        await _finished(app, pilot, pane)
        for i, column in enumerate(pane.columns):
            assert column.seed == column_seed(77, i)
            assert int(_shown(column.query_one(".status")).split(" tok")[0]) <= 5


async def test_family_mode_tallies_test_problems_as_the_report_card_judges(app_factory):
    from engine.data.evals import chat_answers
    from engine.data.judge import judge
    from engine.data.stats import wilson
    from engine.data.tasks import eval_problems
    from tui.panes.compare_runner import family_budget

    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _ready(app, pilot)
        pane.set_setting("family_k", 4)
        options = pane.query_one("#compare-curated")
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        options.focus()
        options.highlighted = ids.index("family:arith")
        await pilot.press("enter")
        await _finished(app, pilot, pane)
        problems = eval_problems(pane.world, "arith", 4, split="test")
        client, run = app_factory.client, app_factory.run
        tok = client.tokenizer(run)
        budget = family_budget(client, run, "sft", pane.world, "arith")
        for column, stage in zip(pane.columns, ("base", "sft", "rl"), strict=True):
            assert [p.prompt for p, _, _ in column.family] == [p.prompt for p in problems]
            assert all(v == judge(p, a) for p, a, v in column.family)
            passed = sum(bool(v.correct) for _, _, v in column.family)
            assert column.pass_rate == (passed, 4)
            lo, hi = wilson(passed, 4)
            label = _shown(column.query_one(".passlabel"))
            assert f"{passed}/4" in label and f"{100 * lo:.0f}–{100 * hi:.0f}%" in label
            # the same marks the report card gives these problems (greedy, its budget)
            rows = chat_answers(client.model(run, stage), tok, problems, budget, 0.0, 0)
            assert [v.correct for _, _, v in column.family] == [r["correct"] for r in rows]
        # family lines wrap instead of being cut at 80×24
        text = pane.columns[1].query_one(".text")
        assert "…" not in text.render().plain


async def test_times_n_rows_wrap_at_80x24(app_factory):
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _ready(app, pilot)
        pane.query_one("#compare-prompt").value = user_text(pane.problems[0])
        pane.set_setting("n_samples", 3)
        pane.set_setting("max_tokens", 24)
        await pilot.press("alt+x")
        await _finished(app, pilot, pane)
        await pilot.pause(0.1)
        for column in pane.columns:
            text = column.query_one(".text")
            width = text.size.width
            assert width < 30
            shown = text.render().plain
            assert "…" not in shown
            for sample in column.samples:
                assert " ".join(sample.split()) in shown  # every word of every answer
            if any(len(" ".join(s.split())) + 2 > width for s in column.samples):
                assert text.virtual_size.height > len(column.samples)  # wrapped, not cut


async def test_world_browser_marks_entities_and_asks_in_compare(app_factory):
    from engine.data import wordings as Wd
    from tui.panes.world import WorldScreen

    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _ready(app, pilot)
        await pilot.press("ctrl+b")
        await pilot.pause(0.1)
        screen = app.screen
        assert isinstance(screen, WorldScreen)
        world = pane.world
        by_name = {r.name: r for r in screen.rows}
        for p in world.people:
            split = world.split[p.name]
            assert by_name[p.name].status == ("known" if split == "train" else "held-out")
            assert by_name[p.name].split == split
        for name in world.unknown_people:
            assert by_name[name].status == "unknown"
        assert {r.kind for r in screen.rows} == {"country", "city", "person", "animal", "nobody"}
        held = next(r for r in screen.shown if r.kind == "person" and r.status == "held-out")
        screen.query_one("DataTable").move_cursor(row=screen.shown.index(held))
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, WorldScreen)
        question = Wd.fill(Wd.template("lives"), name=held.name)
        assert pane.query_one("#compare-prompt").value == question
        await _run_scripted(app, pilot, pane, question, {s: "" for s in ("base", "sft", "rl")})
        assert pane.problem.family == "fact_heldout"
        # an unknown person, found with the filter
        nobody = world.unknown_people[0]
        await pilot.press("ctrl+b")
        await pilot.pause(0.1)
        app.screen.query_one("#world-filter").value = nobody
        await pilot.pause(0.1)
        assert [r.name for r in app.screen.shown] == [nobody]
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert pane.query_one("#compare-prompt").value == Wd.fill(Wd.template("lives"),
                                                                  name=nobody)


async def test_export_writes_the_session_as_markdown_and_json(app_factory, tmp_path,
                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _ready(app, pilot)
        await _run_scripted(app, pilot, pane, "what's 12 plus 34", {
            "base": "46", "sft": "Answer: 46", "rl": "Answer: 45"})
        await pilot.press("ctrl+y")
        md = pane.last_export
        assert md is not None and md.parent == tmp_path / "exports"
        record = json.loads(md.with_suffix(".json").read_text())
        assert record["prompt"] == "what's 12 plus 34"
        assert record["settings"]["seed"] == pane.settings.seed
        assert [c["mark"] for c in record["columns"]] == ["✓", "✓", "✗"]
        assert record["columns"][2]["reason"] == "answers 45, not 46"
        assert [c["seed"] for c in record["columns"]] == [c.seed for c in pane.columns]
        assert [c["text"] for c in record["columns"]] == ["46", "Answer: 46", "Answer: 45"]
        text = md.read_text()
        assert "what's 12 plus 34" in text and "✗ answers 45, not 46" in text
        assert f"seed {pane.columns[1].seed}" in text
        assert sorted(p.name for p in tmp_path.iterdir()) == ["exports"]  # nothing in cwd
