"""The Compare pane on a small real run: curated prompts, three streaming columns, ✓/✗, ×N."""

from __future__ import annotations

import threading

import pytest

from tui.panes.compare_fewshot import fewshot_answer, fewshot_document
from tui.panes.compare_runner import user_text

pytestmark = pytest.mark.anyio


@pytest.fixture
def app_factory(micro_run, monkeypatch):
    """DeepdiveApp opened on Compare for the test run, with a fresh model client."""
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(micro_run.parent))
    from tui.app import DeepdiveApp
    from tui.client import ModelClient

    client = ModelClient(device="cpu")
    monkeypatch.setattr("tui.client.shared_client", lambda: client)

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
    from engine.chat import render_prompt
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
        settings = pane.settings.sample_settings()
        for column, stage in zip(pane.columns, ("base", "sft", "rl"), strict=True):
            status = str(column.query_one(".status").render())
            assert " tok · " in status and " s" in status
            # each column shows exactly what its model continues from the chat-formatted prompt
            assert column.text == _expected_stream(client, run, stage, ids, settings, stops)
        # three different models: their answers are not all the same text
        assert len({c.text for c in pane.columns}) > 1


async def test_verdicts_match_the_verifier(app_factory):
    from engine.tasks import verify

    app = app_factory()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _ready(app, pilot)
        checkable = [p for p in pane.problems if p.answer]
        assert checkable, "curated prompts must include checkable ones"
        pane.query_one("#compare-prompt").value = user_text(checkable[0])
        await pilot.press("ctrl+r")
        await _finished(app, pilot, pane)
        for column in pane.columns:
            assert column.verdict == verify(checkable[0], column.text)
            mark = "✓" if column.verdict == 1.0 else "✗"
            assert mark in str(column.query_one(".status").render())
        # a prompt of one's own has nothing to check: no marks
        pane.query_one("#compare-prompt").value = "tell me a story"
        await pilot.press("ctrl+r")
        await _finished(app, pilot, pane)
        for column in pane.columns:
            assert column.verdict is None
            status = str(column.query_one(".status").render())
            assert "✓" not in status and "✗" not in status


async def test_times_n_shows_pass_rates_of_n_samples(app_factory, monkeypatch):
    import importlib

    from tui.panes.compare_runner import stop_ids

    tasks = importlib.import_module("engine.tasks")

    app = app_factory()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _ready(app, pilot)
        problem = next(p for p in pane.problems if p.answer)
        pane.query_one("#compare-prompt").value = user_text(problem)
        pane.settings.n_samples = 6
        pane.settings.max_tokens = 24
        # a verifier that passes about half of any model's answers, so the rate is not 0 or 1
        monkeypatch.setattr(tasks, "verify", lambda p, r: float(len(r) % 2 == 0))
        await pilot.press("ctrl+g")
        await _finished(app, pilot, pane)
        client, run = app_factory.client, app_factory.run
        tok = client.tokenizer(run)
        from engine.chat import render_prompt

        ids, stops = render_prompt(tok, problem.messages), stop_ids(tok)
        for column, stage in zip(pane.columns, ("base", "sft", "rl"), strict=True):
            assert len(column.samples) == 6
            rows = client.generate_batch(run, stage, [ids] * 6, pane.settings.sample_settings(),
                                         stops)
            assert column.samples == [tok.decode([i for i in r if i not in stops]) for r in rows]
            passed = sum(len(s) % 2 == 0 for s in column.samples)
            assert column.pass_rate == (passed, 6)
            digits = column.query_one("Digits")
            assert digits.value == str(round(100 * passed / 6))
            assert column.has_class("-passrate") and digits.display


async def test_fewshot_toggle_gives_the_base_column_a_qa_document(app_factory):
    from engine.chat import render_document
    from tui.panes.compare_runner import stop_ids

    app = app_factory()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _ready(app, pilot)
        assert pane.examples, "few-shot examples come from the world's facts"
        problem = pane.problems[0]
        pane.query_one("#compare-prompt").value = user_text(problem)
        await pilot.press("ctrl+o")
        assert "few-shot" in str(pane.query_one("#compare-settings").render())
        await pilot.press("ctrl+r")
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
        await pilot.press("ctrl+n")
        await _finished(app, pilot, pane)
        assert pane.settings.seed != before
        assert f"seed {pane.settings.seed}" in str(pane.query_one("#compare-settings").render())


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

