"""Pilot tests of the Sample pane at 80x24 with tiny real (random-weight) models."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from test_client import make_toy_runs
from textual.app import App
from textual.widgets import Footer, Select, TextArea

from tui.panes.sample import SamplePane
from tui.panes.sample_view import DistributionView, TokenView

SIZE = (80, 24)
pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    return make_toy_runs(tmp_path_factory.mktemp("runs"))


@pytest.fixture
def runs(runs_root, monkeypatch) -> Path:
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(runs_root))
    return runs_root


class Host(App):
    """The pane alone, with its own client (no cached models shared between tests)."""

    def __init__(self, run: str | None = None):
        super().__init__()
        self.run_name = run

    def compose(self):
        from engine.api import ModelClient

        pane = SamplePane(id="sample-pane", client=ModelClient(device="cpu"))
        pane.STEP_REVEAL_S = 0.0
        yield pane
        yield Footer()


async def until(pilot, condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await pilot.pause(0.05)


def setup(pane: SamplePane, model=("toy", "base"), prompt="The red cat", **knobs) -> None:
    pane.query_one("#sample-model", Select).value = model
    pane.query_one(TextArea).text = prompt
    for name, value in knobs.items():
        pane.query_one(f"#sample-{name}").value = str(value)


async def generate(pilot, pane: SamplePane, key: str = "ctrl+g") -> None:
    await pilot.press(key)
    await until(pilot, lambda: not pane.running)


def out_text(pane: SamplePane) -> str:
    return "".join(e.text for e in pane.events)


async def test_lists_runs_and_stages(runs):
    async with Host().run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        picker = pane.query_one("#sample-model", Select)
        values = [v for _, v in picker._options if isinstance(v, tuple)]
        assert values == [("long", "base"), ("toy", "base"), ("toy", "sft")]
        picker.value = ("toy", "sft")
        await pilot.pause(0.05)
        assert pane.query_one("#sample-mode", Select).value is True  # a tuned model chats
        picker.value = ("toy", "base")
        await pilot.pause(0.05)
        assert pane.query_one("#sample-mode", Select).value is False  # a base model continues
        await pilot.press("ctrl+t")  # the user's choice survives a re-scan (the tab re-shown)
        pane.refresh_models()
        await pilot.pause(0.05)
        assert pane.query_one("#sample-mode", Select).value is True
        assert pane.selected_model() == ("toy", "base")


async def test_generate_streams_tokens_and_counts_them(runs):
    async with Host().run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        setup(pane, max=20)
        await generate(pilot, pane)
        view = pane.query_one(TokenView)
        assert len(pane.events) == 20 == view.n_tokens
        assert [e.index for e in pane.events] == list(range(20))
        assert pane.status_text.startswith("20 tokens")
        assert "reached max tokens" in pane.status_text
        # the prompt the model saw leads the stream: <|bos|> then the text
        assert view.chips[0].index == -1 and view.prompt_text == "<|bos|>The red cat"
        # ... as the tokens it is: one chip per prompt id
        assert len([c for c in view.chips if c.index < 0]) == len(pane.context_ids)
        assert all(0 < e.prob <= 1 for e in pane.events)


async def test_chat_mode_uses_the_chat_template(runs):
    async with Host().run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        setup(pane, model=("toy", "sft"), prompt="hi", max=5)
        await pilot.pause(0.05)
        await generate(pilot, pane)
        prompt = pane.query_one(TokenView).prompt_text
        assert prompt == "<|bos|><|user_start|>hi<|user_end|><|assistant_start|>"
        await pilot.press("ctrl+t")  # to raw mode
        pane.query_one(TextArea).text = "hi"
        await generate(pilot, pane)
        assert pane.query_one(TokenView).prompt_text == "<|bos|>hi"


async def test_select_token_shows_its_distribution(runs):
    async with Host().run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        setup(pane, max=12)
        await generate(pilot, pane)
        view = pane.query_one(TokenView)
        dist = pane.query_one(DistributionView)
        view.focus()
        await pilot.press("left", "left")  # from the end: the 11th token
        await pilot.pause(0.05)
        assert view.selected == 10
        event = pane.events[10]
        assert pane.selected_event() is event
        probs = [p for _, _, p, _ in dist.rows]
        assert sum(probs) <= 1 + 1e-6
        chosen = [row for row in dist.rows if row[3]]
        assert len(chosen) == 1 and chosen[0][0] == event.id
        assert abs(chosen[0][2] - event.prob) < 1e-6
        await pilot.press("home")
        assert view.selected == 0 and [r for r in dist.rows if r[3]][0][0] == pane.events[0].id
        await pilot.press("escape")  # nothing running: back to following the newest token
        await pilot.pause(0.05)
        assert view.selected is None
        assert [r for r in dist.rows if r[3]][0][0] == pane.events[-1].id


async def test_click_selects_a_token(runs):
    async with Host().run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        setup(pane, prompt="", max=30)
        await generate(pilot, pane)
        view = pane.query_one(TokenView)
        line, col = 1, 0  # the first piece of the second line is a sampled token
        i, _, _ = view._lines[line][0]
        want = view.chips[i].index
        assert want >= 0
        await pilot.click(TokenView, offset=(1 + col, line))  # +1: the view's left padding
        await pilot.pause(0.05)
        assert view.selected == want
        assert [r for r in pane.query_one(DistributionView).rows if r[3]][0][0] == \
            pane.events[want].id


async def test_step_mode_draws_one_token_per_key(runs):
    seen = []

    def hook(message):
        seen.append(type(message).__name__)

    async with Host().run_test(size=SIZE, message_hook=hook) as pilot:
        pane = pilot.app.query_one(SamplePane)
        setup(pane, max=50)
        view = pane.query_one(TokenView)
        await pilot.press("ctrl+n")
        await until(pilot, lambda: view.n_tokens == 1)
        await pilot.pause(0.3)
        assert view.n_tokens == 1 and pane.running  # waits for the next key
        # the distribution came first, then the token
        assert seen.index("SamplePending") < seen.index("SampleTokens")
        await pilot.press("ctrl+n")
        await until(pilot, lambda: view.n_tokens == 2)
        await pilot.press("ctrl+n", "ctrl+n")
        await until(pilot, lambda: view.n_tokens == 4)
        await pilot.pause(0.2)
        assert view.n_tokens == 4
        # generate leaves step mode: the same stream runs on to max tokens
        await generate(pilot, pane)
        assert view.n_tokens == 50 == len(pane.events)
        stepped = out_text(pane)
        await generate(pilot, pane)  # same seed in one go: the same text
        assert out_text(pane) == stepped


async def test_escape_cancels_a_long_generation(runs):
    async with Host().run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        setup(pane, model=("long", "base"), max=4000)
        await pilot.press("ctrl+g")
        await until(pilot, lambda: len(pane.events) > 0)
        await pilot.press("escape")
        await until(pilot, lambda: not pane.running, timeout=5)
        assert len(pane.events) < 4000
        assert "cancelled" in pane.status_text
        # the UI still works after the cancel
        setup(pane, model=("long", "base"), max=3)
        await generate(pilot, pane)
        assert len(pane.events) == 3


async def test_seeded_generation_is_reproducible_and_reroll_differs(runs):
    async with Host().run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        setup(pane, max=16, seed=7)
        await generate(pilot, pane)
        first = out_text(pane)
        await generate(pilot, pane)
        assert out_text(pane) == first
        await generate(pilot, pane, "ctrl+r")
        assert pane.query_one("#sample-seed").value == "8"
        assert out_text(pane) != first


async def test_truncated_prompt_shows_a_notice(runs):
    async with Host().run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        setup(pane, prompt="The red cat sat on the mat. " * 20, max=8)  # context is 64
        await generate(pilot, pane)
        assert "prompt truncated" in pane.status_text
        context = pane.query_one(TokenView).prompt_text
        assert context.startswith("…") and context.endswith("the mat. ")
        assert any("prompt truncated" in n.message for n in pilot.app._notifications)
        assert len(pane.events) == 8


async def test_bad_input_and_broken_model_notify_without_crashing(runs, tmp_path, monkeypatch):
    async with Host().run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        setup(pane, temp="hot")
        await pilot.press("ctrl+g")
        await pilot.pause(0.05)
        assert not pane.running
        assert any("temperature" in n.message for n in pilot.app._notifications)
    # a run whose model file is corrupt: a visible error, the pane stays usable
    import shutil

    broken = tmp_path / "runs"
    shutil.copytree(runs / "toy", broken / "toy")
    (broken / "toy" / "base" / "model.safetensors").write_bytes(b"not a model")
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(broken))
    async with Host().run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        setup(pane, model=("toy", "base"))
        await generate(pilot, pane)
        assert pane.status_text.startswith("failed: CheckpointError")
        assert any("model.safetensors" in n.message for n in pilot.app._notifications)
        setup(pane, model=("toy", "sft"), max=4)
        await generate(pilot, pane)
        assert len(pane.events) == 4


async def test_missing_run_and_no_models_say_what_to_do(runs, tmp_path, monkeypatch):
    async with Host(run="nope").run_test(size=SIZE) as pilot:
        await pilot.pause(0.05)
        assert any("no run named 'nope'" in n.message for n in pilot.app._notifications)
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(tmp_path / "empty"))
    async with Host().run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        help_box = pane.query_one("#sample-help")
        assert help_box.display and not pane.query_one(TokenView).display
        assert "deepdive train --preset tiny" in str(help_box.content)
        await pilot.press("ctrl+g")
        await pilot.pause(0.05)
        assert not pane.running
        assert any("deepdive train" in n.message for n in pilot.app._notifications)


async def test_in_the_app_shell(runs):
    """The real app: the Sample tab lists the runs and generates (shared client)."""
    from tui.app import DeepdiveApp

    app = DeepdiveApp(start_tab="sample", run="toy")
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(SamplePane)
        await pilot.pause(0.1)
        assert pane.selected_model() == ("toy", "sft")  # the app's run, its latest stage
        pane.STEP_REVEAL_S = 0.0
        setup(pane, model=("toy", "sft"), prompt="hi", max=6)
        await generate(pilot, pane)
        assert len(pane.events) == 6
    await asyncio.sleep(0)


async def test_token_view_layout_wraps_marks_newlines_and_held_bytes():
    class ViewApp(App):
        def compose(self):
            yield TokenView()

    async with ViewApp().run_test(size=(20, 6)) as pilot:
        view = pilot.app.query_one(TokenView)
        view.clear("PROMPT")
        # a newline ends its line; "" (bytes of an unfinished character) shows as …;
        # a token that does not fit moves whole to the next line; wide characters count 2
        view.add_tokens([(" a\n", 0.9), ("", 0.3), ("é", 0.3), (" abcdefghijkl", 0.01),
                         (" 한국", 0.5), ("\t", 0.6)])
        await pilot.pause(0.05)
        texts = ["".join(piece for _, piece, _ in line) for line in view._lines]
        assert texts[0] == "PROMPT a↵"
        assert texts[1] == "…é abcdefghijkl"
        assert texts[2] == " 한국⇥"
        assert view.n_tokens == 6
        assert view.token_at(0, 1) == 1 and view.token_at(1, 1) == 2
        assert view.token_at(0, 0) is None  # the prompt is not a sampled token
        assert view.token_at(3, 2) == 4 and view.token_at(5, 2) == 5


async def test_a_trained_micro_run(request, monkeypatch):
    """The real trainer's micro run: every stage is listed and the tuned model chats."""
    micro_run = request.getfixturevalue("micro_run")
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(micro_run.parent))
    async with Host(run=micro_run.name).run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        values = [v for _, v in pane.query_one("#sample-model", Select)._options
                  if isinstance(v, tuple)]
        assert values == [(micro_run.name, s) for s in ("base", "sft", "rl")]
        assert pane.selected_model() == (micro_run.name, "sft")  # the chat model
        assert pane.query_one("#sample-mode", Select).value is True
        setup(pane, model=(micro_run.name, "sft"), prompt="What is 2 + 3?", max=40)
        await generate(pilot, pane)
        assert 0 < len(pane.events) == pane.query_one(TokenView).n_tokens <= 40
        end = pane.events[-1]
        assert len(pane.events) == 40 or end.text == "<|assistant_end|>"


def test_probability_bars_are_proportional_and_show_small_odds():
    from tui.panes.sample_view import bar_of

    assert bar_of(1.0, 8) == "█" * 8 and bar_of(0.0, 8) == "·" * 8
    assert bar_of(0.5, 8) == "████····"
    assert bar_of(0.02, 8)[0] != "·"  # 2% is still visible
    assert all(len(bar_of(p / 100, 8)) == 8 for p in range(101))


async def test_empty_top_p_top_k_and_seed_are_valid(runs):
    """Empty top-p / top-k mean "off" and an empty seed "random": never shown as errors."""
    async with Host().run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        for name in ("topp", "topk", "seed"):
            box = pane.query_one(f"#sample-{name}")
            box.focus()
            await pilot.press("1", "end", *["backspace"] * 8)
            await pilot.pause(0.05)
            assert box.value == ""
            assert not box.has_class("-invalid"), name
        pane.query_one("#sample-temp").focus()  # leaving the box validates it again (blur)
        await pilot.pause(0.05)
        assert not any(pane.query_one(f"#sample-{n}").has_class("-invalid")
                       for n in ("topp", "topk", "seed"))
        assert pane.read_knobs().top_p is None and pane.read_knobs().seed is None


async def test_distribution_shows_the_models_own_odds_beside_the_tempered_ones(runs):
    """At a low temperature the drawn-from column is sharpened; T=1 is the model's softmax."""
    import torch

    async with Host().run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        setup(pane, max=6, temp=0.3, topk="")
        await generate(pilot, pane)
        view, dist = pane.query_one(TokenView), pane.query_one(DistributionView)
        view.focus()
        await pilot.press("home", "right", "right")  # the third token
        await pilot.pause(0.05)
        event = pane.events[2]
        model = pane.client.model("toy", "base")
        ids = pane.context_ids + [e.id for e in pane.events[:2]]
        with torch.no_grad():
            logits, _ = model(torch.tensor([ids]))
        want = torch.softmax(logits[0, -1].float(), dim=-1)
        assert set(dist.raw) >= {event.id, *(i for i, _, _ in event.top)}
        for i, p in dist.raw.items():
            assert abs(p - float(want[i])) < 1e-4
        assert abs(dist.raw[event.id] - event.prob) > 1e-3  # T=0.3 reshaped it
        shown = str(dist.content)
        assert "T=1" in shown and f"{dist.raw[event.id]:.1%}" in shown


async def test_multi_turn_chat_shows_the_conversation_as_render_prompt_ids(runs):
    """Each reply joins the conversation; the next prompt is render_prompt of all of it,
    exactly the ids training would render, shown one chip per token."""
    from engine.tokens.chat import render_prompt
    from engine.tokens.tokenizer import Tokenizer

    tok = Tokenizer.load(runs / "toy" / "tokenizer.json")
    async with Host().run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        setup(pane, model=("toy", "sft"), prompt="hi there", max=5)
        await pilot.pause(0.05)
        assert pane.query_one("#sample-mode", Select).value is True
        await generate(pilot, pane)
        first = tok.decode([e.id for e in pane.events])  # (a random model: maybe broken UTF-8)
        assert pane.conversation == [{"role": "user", "content": "hi there"},
                                     {"role": "assistant", "content": first}]
        box = pane.query_one(TextArea)
        assert box.text == "" and "turn 1" in pane.status_text
        box.text = "and the cat?"
        await generate(pilot, pane)
        messages = [{"role": "user", "content": "hi there"},
                    {"role": "assistant", "content": first},
                    {"role": "user", "content": "and the cat?"}]
        assert pane.context_ids == render_prompt(tok, messages)
        view = pane.query_one(TokenView)
        prompt_chips = [c for c in view.chips if c.index < 0]
        assert len(prompt_chips) == len(pane.context_ids)
        shown = view.prompt_text
        assert shown.startswith("<|bos|><|user_start|>hi there<|user_end|><|assistant_start|>")
        assert shown.endswith("<|user_start|>and the cat?<|user_end|><|assistant_start|>")
        assert sum(c.kind == "special" for c in prompt_chips) == 8
        assert len(pane.conversation) == 4
        # re-roll: the last reply again, from the same conversation, with the next seed
        await generate(pilot, pane, "ctrl+r")
        assert len(pane.conversation) == 4 and pane.context_ids == render_prompt(tok, messages)
        # Esc when idle with nothing selected: a new conversation
        await pilot.press("escape")
        await pilot.pause(0.05)
        assert pane.conversation == []
        box.text = "hi"
        await generate(pilot, pane)
        assert pane.context_ids == render_prompt(tok, [{"role": "user", "content": "hi"}])


async def test_copy_export_and_model_key(runs, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("DEEPDIVE_EXPORT_DIR", str(tmp_path / "out"))
    app = Host()
    copied: list[str] = []
    monkeypatch.setattr(app, "copy_to_clipboard", copied.append)
    async with app.run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(SamplePane)
        setup(pane, max=8)
        await generate(pilot, pane)
        pane.query_one(TokenView).focus()
        await pilot.press("ctrl+c")
        await until(pilot, lambda: copied)
        assert copied[-1] == "<|bos|>The red cat" + out_text(pane)
        await pane.run_action("copy_ids")
        assert copied[-1].split() == [str(i) for i in
                                      pane.context_ids + [e.id for e in pane.events]]
        await pane.run_action("export")
        out = tmp_path / "out"
        (md,) = out.glob("sample-toy-base-*.md")
        (js,) = out.glob("sample-toy-base-*.json")
        assert out_text(pane) in md.read_text()
        data = json.loads(js.read_text())
        assert [t["id"] for t in data["tokens"]] == [e.id for e in pane.events]
        assert data["prompt_ids"] == pane.context_ids
        # ctrl+f opens the model list; after a choice typing goes to the prompt again
        picker = pane.query_one("#sample-model", Select)
        await pilot.press("ctrl+f")
        await until(pilot, lambda: picker.expanded)
        await pilot.press("down", "enter")
        await until(pilot, lambda: pane.query_one(TextArea).has_focus)
        assert pane.selected_model() == ("toy", "sft")
