"""The report card: evaluate_run on a tiny random run, the pure report builder, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data import evals as E
from engine.data import tasks as T
from engine.data import world as W
from engine.data.stats import claim_figure, pct

N = 4


@pytest.fixture(scope="module")
def random_run(tmp_path_factory) -> Path:
    """A run folder with untrained base/sft/rl/sft_control models and an RL curve."""
    import torch

    from engine.model.checkpoint import save_checkpoint
    from engine.model.gpt import GPT, GPTConfig
    from engine.progress.events import EventWriter
    from engine.tokens.tokenizer import train_bpe

    run = tmp_path_factory.mktemp("runs") / "rand"
    world = W.build_world(0)
    tok = train_bpe(W.pretrain_documents(world, n_stories=10, n_skills=20), 300)
    run.mkdir()
    tok.save(run / "tokenizer.json")
    (run / "run.json").write_text(json.dumps({"preset": "test", "seed": 0,
                                              "data": {"world_seed": 0},
                                              "preset_config": {"rl": {"families": [
                                                  "arith", "decimal_cmp"]}}}))
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=tok.n_vocab, block_size=256, n_layer=1, n_head=2, n_embd=16)
    for stage in ("base", "sft", "rl", "sft_control"):
        save_checkpoint(run / stage, GPT(cfg), {"stage": stage, "step": 1})
    events = EventWriter(run)
    for step, reward in ((1, 0.25), (2, 0.5)):
        events.emit("step", stage="rl", step=step, reward=reward, resp_len=40.0 + step,
                    work_first=reward * 2)
    events.emit("step", stage="sft", step=3, loss=1.0)  # not RL: not on the curve
    return run


def test_evaluate_run_writes_a_complete_report(random_run):
    ticks = []
    report = E.evaluate_run(random_run, n_per_family=N, progress=lambda d, t, _: ticks.append(d))
    on_disk = json.loads((random_run / "report.json").read_text())
    assert on_disk["metrics"] == report["metrics"]
    m = report["metrics"]
    for name in E.REQUIRED:
        assert isinstance(m[name], float) and 0.0 <= m[name] <= 1.0, name
    for fam in E.CHAT_FAMILIES:
        n = 2 if fam == "identity" else N  # identity has two test wordings
        assert m[f"n_eval_{fam}"] == report["families"][fam]["n"] == n, fam
        assert set(report["families"][fam]) >= {"base", "sft", "rl", "control"}
    assert ticks and ticks[-1] == len(ticks)
    assert report["split"] == "test"
    for stage in ("sft", "rl"):  # sampled pass@1 <= pass@k, both measured
        assert 0.0 <= m[f"arith_pass1_{stage}"] <= m[f"arith_passk_{stage}"] <= 1.0
    assert m["n_eval_passk"] >= 1  # distinct sums behind pass@k (the base model samples none)
    # The labelers' accuracy is measured by simulating them on test sums, not the models.
    assert m["arith_labelers"] == round(W.labeler_accuracy(W.build_world(0), 0.3, "test"), 4)
    assert report["rl_curve"] == [{"step": 1, "reward": 0.25, "resp_len": 41.0, "work_first": 0.5},
                                  {"step": 2, "reward": 0.5, "resp_len": 42.0, "work_first": 1.0}]
    assert (m["rl_len_start"], m["rl_len_end"]) == (41.0, 42.0)
    assert (m["rl_share_work_first_start"], m["rl_share_work_first_end"]) == (0.5, 1.0)
    assert 0.9 <= m["sft_data_share_work_first"] <= 1.0  # the world's worked SFT replies
    # transfer: every family, RL - control on the same prompts, practised ones marked
    rows = {r["family"]: r for r in report["transfer"]}
    assert set(rows) == {*E.CHAT_FAMILIES, "open_tasks"}
    assert [f for f, r in rows.items() if r["trained"]] == ["arith", "decimal_cmp"]
    for fam in E.CHAT_FAMILIES:
        r = rows[fam]
        assert r["diff"] == round(r["rl"] - r["control"], 4) == m[f"transfer_{fam}"]
        assert r["lo"] <= r["diff"] <= r["hi"] and r["n"] == report["families"][fam]["n"]
    # the open tasks: RLHF's test tasks, every one asked of both, in gold
    from engine.data.open_tasks import open_tasks

    gold = rows["open_tasks"]
    assert gold["unit"] == "gold" and not (gold["trained"] or gold["verifiable"])
    assert gold["n"] == len(open_tasks(W.build_world(0), "test", 10_000))
    assert gold["diff"] == pytest.approx(gold["rl"] - gold["control"], abs=2e-4)
    assert (m["transfer_open_tasks_lo"] <= m["transfer_open_tasks"] == gold["diff"]
            <= m["transfer_open_tasks_hi"])
    ids = {c["id"] for c in report["claims"]}
    assert {"knowledge", "format", "hallucination", "tokens_to_think", "paraphrase",
            "pass_at_k", "rl_beyond_labelers", "rl_dynamics", "transfer", "rl_discovers"} <= ids
    assert all(c["reading"] for c in report["claims"])
    ex = report["examples"]["arith"]["sft"][0]
    assert set(ex) >= {"prompt", "answer", "expected", "correct", "reason"}
    assert ex["expected"].isdigit() and isinstance(ex["correct"], bool)


def test_missing_stages_give_nulls_not_a_crash(random_run, tmp_path):
    import shutil

    run = tmp_path / "baseonly"
    run.mkdir()
    for name in ("tokenizer.json", "run.json"):
        shutil.copy(random_run / name, run / name)
    shutil.copytree(random_run / "base", run / "base")
    report = E.evaluate_run(run, n_per_family=2)
    m = report["metrics"]
    assert m["arith_pass1_sft"] is None and m["arith_pass1_rl"] is None
    assert m["arith_pass1_sft_control"] is None
    assert 0.0 <= m["format_base"] <= 1.0
    assert "sft" not in report["families"]["arith"]
    assert report["rl_curve"] == []
    assert "no extra-SFT control" in next(c for c in report["claims"]
                                          if c["id"] == "rl_beyond_labelers")["reading"]


def test_format_and_correctness_are_read_from_the_tokens(random_run, monkeypatch):
    """Formatted = ends with <|assistant_end|> and holds no other special token."""
    from engine.tokens.tokenizer import Tokenizer

    tok = Tokenizer.load(random_run / "tokenizer.json")
    end, bos = tok.special_id("<|assistant_end|>"), tok.special_id("<|bos|>")
    problem = T.Problem("arith", [{"role": "user", "content": "What is 5 + 7?"}], "12")
    outs = [tok.encode("Ones: 5 + 7 = 12.\nAnswer: 12") + [end],  # right, formatted
            tok.encode("Answer: 13") + [end],                      # wrong, formatted
            tok.encode("Answer: 12"),                              # right, never ended
            tok.encode("Answer: 12") + [bos] + tok.encode("Answer: 13")]  # then a new document
    monkeypatch.setattr(E, "_generate", lambda model, prompts, *a: outs[: len(prompts)])
    rows = E.chat_answers(None, tok, [problem] * 4, 32, 0.0, 0)
    # the reply ends at the first special token: the new document's 13 is not part of it
    assert [r["correct"] for r in rows] == [True, False, True, True]
    assert [r["format"] for r in rows] == [True, True, False, False]
    assert rows[0]["answer"].endswith("Answer: 12")


def test_build_report_computes_shares_and_readings():
    def rows(k, n):
        return [{"prompt": f"q{i % 3}", "answer": "I don't know" if i == 0 else "a",
                 "expected": "1", "correct": i < k, "format": True} for i in range(n)]

    stage = {f: rows(2, 4) for f in E.CHAT_FAMILIES}
    results = {"sft": {**stage, "arith": rows(1, 4), "answer_first": rows(0, 4)},
               "rl": {**stage, "arith": rows(3, 4), "answer_first": rows(0, 4)}}
    sampled = {"sft": {"pass1": 0.2, "passk": 0.6, "n": 3},
               "rl": {"pass1": 0.7, "passk": 0.65, "n": 3}}
    report = E.build_report("r", 0, results, 0.6, [], sampled=sampled, tuned_on="dev")
    m = report["metrics"]
    assert (m["arith_greedy_sft"], m["arith_greedy_rl"], m["work_first_sft"]) == (0.25, 0.75,
                                                                                 0.25)
    assert (m["arith_pass1_sft"], m["arith_pass1_rl"], m["arith_passk_rl"]) == (0.2, 0.7, 0.65)
    assert m["answer_first_sft"] == 0.0 and m["arith_labelers"] == 0.6
    assert m["refusal_known_sft"] == 0.25  # the one "I don't know" of four fact answers
    assert m["paraphrase_ratio_sft"] == 1.0
    assert m["format_base"] is None  # no base model: measured nowhere, so not made up
    rl = next(c for c in report["claims"] if c["id"] == "rl_beyond_labelers")
    assert rl["gain"] == 0.5 and "+50.0 points" in rl["reading"] and "60%" in rl["reading"]
    assert rl["holds"] is True and rl["title"] == "RL with a verifier beat its labelers"
    assert report["families"]["arith"] == {"sft": 0.25, "rl": 0.75, "labelers": 0.6, "n": 3}
    assert report["split"] == "test" and report["tuned_on"] == "dev"


def test_the_control_reading_says_what_it_was_matched_on():
    rows = [{"prompt": f"q{i}", "answer": "a", "expected": "1", "correct": i < 2,
             "format": True} for i in range(4)]
    stage = {f: rows for f in (*E.CHAT_FAMILIES, "answer_first")}
    results = {"sft": stage, "rl": stage, "control": stage}
    sampled = {s: {"pass1": 0.5, "passk": 0.6, "n": 4} for s in results}
    for ratio, says in [(1.02, "SFT given 1.02× RL's compute"),
                        (None, "SFT given as many training seconds as RL")]:
        report = E.build_report("r", 0, results, 0.6, [], sampled=sampled,
                                control_compute=ratio)
        rl = next(c for c in report["claims"] if c["id"] == "rl_beyond_labelers")
        assert says in rl["reading"] and report["metrics"].get("control_compute_ratio") == ratio


def test_cli_eval_json_and_report(random_run):
    from typer.testing import CliRunner

    from deepdive.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["eval", "--run", str(random_run), "--n", "2", "--json"])
    assert res.exit_code == 0, res.output
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert last["metrics"]["n_eval_arith"] == 2
    assert {"transfer_open_tasks", "transfer_open_tasks_lo",
            "transfer_open_tasks_hi"} <= set(last["metrics"])
    res = runner.invoke(app, ["report", "--run", str(random_run)])
    assert res.exit_code == 0 and "arith" in res.stdout and "labelers" in res.stdout


def test_cli_report_shows_gold_figures_as_gold(tmp_path):
    from typer.testing import CliRunner

    from deepdive.cli import app

    run = tmp_path / "gold"
    run.mkdir()
    claim = E.transfer_claim([_row("arith", True, 0.02), _gold_row(0.01)])
    (run / "report.json").write_text(json.dumps({"run": "gold", "families": {},
                                                 "claims": [claim]}))
    res = CliRunner().invoke(app, ["report", "--run", str(run)])
    assert res.exit_code == 0 and "(+0.09)" in res.stdout and "9%" not in res.stdout


def test_cli_report_without_report_exits_2(tmp_path):
    from typer.testing import CliRunner

    from deepdive.cli import app

    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(app, ["report", "--run", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "deepdive eval" in res.output
    res = CliRunner().invoke(app, ["eval", "--run", str(tmp_path / "missing")])
    assert res.exit_code == 2


def test_paired_difference_is_honest_at_few_prompts_and_normal_at_many():
    """Newcombe's paired interval: where all eight answers agree the normal interval claims
    no uncertainty at all ((0, 0, 0)); this one still spans what eight prompts cannot rule
    out. With thousands of prompts it agrees with the normal paired interval."""
    import random

    from engine.data.stats import paired_difference

    same = [True] * 8
    d, lo, hi = paired_difference(same, same)
    assert d == 0 and lo < -0.2 and hi > 0.2
    a = [True, True, False, True, False, True, True, False]
    b = [False, True, False, False, False, True, False, False]
    d, lo, hi = paired_difference(a, b)
    assert d == pytest.approx(3 / 8) and -1 <= lo < d < hi <= 1
    rng = random.Random(0)
    a = [rng.random() < 0.6 for _ in range(4000)]
    b = [x if rng.random() < 0.7 else rng.random() < 0.5 for x in a]
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean = sum(diffs) / len(diffs)
    sd = (sum((x - mean) ** 2 for x in diffs) / (len(diffs) - 1)) ** 0.5
    half = 1.96 * sd / len(diffs) ** 0.5
    got = paired_difference(a, b)
    assert got == pytest.approx((mean, mean - half, mean + half), abs=0.002)
    with pytest.raises(ValueError):
        paired_difference(a, b[:-1])


def _row(fam: str, trained: bool, lo: float) -> dict:
    return {"family": fam, "trained": trained, "verifiable": fam in E.T.RL_FAMILIES,
            "rl": 0.5, "control": 0.4, "diff": lo + 0.05, "lo": lo, "hi": lo + 0.1, "n": 100}


def test_the_transfer_verdict_follows_the_left_out_interval():
    practised = _row("arith", True, 0.02)
    up = E.transfer_claim([practised, _row("count_letters", False, 0.01)])
    flat = E.transfer_claim([practised, _row("count_letters", False, -0.03)])
    none_left = E.transfer_claim([practised])
    assert up["holds"] is True and up["title"] == ("RL's practice transferred to "
                                                   "count_letters, never practised")
    assert flat["holds"] is False
    assert flat["title"] == "No transfer to count_letters, which RL never practised"
    assert "count_letters (+2 points [-3, +7]), never practised" in flat["reading"]
    assert none_left["holds"] is None and "none measures transfer" in none_left["reading"]
    # a family above the control that is not a practice problem is said, not hidden
    facts = {**_row("fact_heldout", False, 0.04), "verifiable": False}
    half = {**_row("template", False, 0.03), "partly": True, "verifiable": False}
    both = E.transfer_claim([practised, _row("count_letters", False, -0.03), facts, half])
    assert "not practice problems above the control beyond noise: fact_heldout" in \
        both["reading"]
    assert "Partly practised (half their items are sums) above the control beyond noise: " \
        "template" in both["reading"]
    # too few prompts to read: shown in the table, but the verdict does not rest on it
    few = E.transfer_claim([practised, {**_row("count_letters", False, 0.05), "few": True}])
    assert few["holds"] is None and "too few prompts" in few["reading"]
    assert few["title"].endswith("(not measured)") and "to ," not in few["title"]


def test_the_discovery_verdict_follows_the_data_and_the_rl_shares():
    sampled = {"example_work_first": {"prompt": "2+2?", "answer": "2 and 2.\nAnswer: 4"},
               "n_work_first": 5, "n_answer_first": 3, "pass1_work_first": 0.4,
               "pass1_answer_first": 0.1}
    found = E.thinking_claim({"sft_data_share_work_first": 0.0, "rl_share_work_first_start": 0.0,
                              "rl_share_work_first_end": 0.3}, sampled)
    known = E.thinking_claim({"sft_data_share_work_first": 0.6, "rl_share_work_first_start": 0.5,
                              "rl_share_work_first_end": 0.9}, sampled)
    # answering first is new to data that always works first, but it is right less often
    worse = E.thinking_claim({"sft_data_share_work_first": 1.0, "rl_share_work_first_start": 0.98,
                              "rl_share_work_first_end": 0.9}, sampled)
    assert found["holds"] is True and "Answer: 4" in found["reading"]
    assert known["holds"] is False and "discovered nothing new" in known["reading"]
    assert worse["holds"] is False and "nothing better was discovered" in worse["reading"]
    # data that always answers first, RL working first less than at its start: said as such
    kept = E.thinking_claim({"sft_data_share_work_first": 0.0,
                             "rl_share_work_first_start": 0.2,
                             "rl_share_work_first_end": 0.1}, sampled)
    assert kept["holds"] is False and "always answers first" in kept["reading"]
    assert "Both ways" not in kept["reading"]
    assert E.thinking_claim({}, {})["holds"] is None


def _open(golds: list[float]) -> list[dict]:
    return [{"prompt": f"Tell a visitor about place {i}.", "gold": g}
            for i, g in enumerate(golds)]


def test_the_open_tasks_row_is_a_paired_t_interval_on_gold():
    """RL 0.5 0.25 0 0.25 against the control 0.25 0.25 -0.25 0: differences 0.25 0 0.25 0.25,
    mean 0.1875, sd 0.125, so the interval is 0.1875 ± t(3) · 0.125 / 2 with t(3) = 3.1824:
    [-0.0114, +0.3864]. Four tasks are too few to read."""
    row = E.open_transfer_row(_open([0.5, 0.25, 0.0, 0.25]), _open([0.25, 0.25, -0.25, 0.0]))
    assert row == {"family": "open_tasks", "trained": False, "partly": False,
                   "verifiable": False, "unit": "gold", "rl": 0.25, "control": 0.0625,
                   "diff": 0.1875, "lo": -0.0114, "hi": 0.3864, "n": 4, "few": True}
    # not the same tasks, or too few to have a spread: no row
    assert E.open_transfer_row(_open([0.5, 0.25]), _open([0.5, 0.25, 0.0])) is None
    assert E.open_transfer_row(_open([0.5]), _open([0.25])) is None


def test_the_open_tasks_row_needs_a_control():
    rows = [{"prompt": f"q{i}", "answer": "a", "expected": "1", "correct": i < 2,
             "format": True} for i in range(4)]
    stage = {f: rows for f in (*E.CHAT_FAMILIES, "answer_first")}
    rl = {**stage, "open_tasks": _open([0.5, 0.25, 0.0, 0.25])}
    with_control = E.build_report("r", 0, {"sft": stage, "rl": rl, "control": {
        **stage, "open_tasks": _open([0.25, 0.25, -0.25, 0.0])}}, 0.6, [])
    alone = E.build_report("r", 0, {"sft": stage, "rl": rl}, 0.6, [])
    m = with_control["metrics"]
    assert (m["transfer_open_tasks"], m["transfer_open_tasks_lo"],
            m["transfer_open_tasks_hi"]) == (0.1875, -0.0114, 0.3864)
    assert with_control["transfer"][-1]["family"] == "open_tasks"
    assert alone["transfer"] == [] and not any(k.startswith("transfer")
                                               for k in alone["metrics"])


def _gold_row(lo: float, n: int = 32) -> dict:
    return {"family": "open_tasks", "trained": False, "partly": False, "verifiable": False,
            "unit": "gold", "rl": 0.1, "control": 0.02, "diff": lo + 0.08, "lo": lo,
            "hi": lo + 0.16, "n": n, "few": n < E.FEW_PROMPTS}


def test_the_transfer_verdict_follows_the_open_tasks_gold():
    """The open tasks are left out of RL like a verifiable family it did not practise: their
    gold interval above zero is transfer, and the title and figure say so, in gold."""
    practised, letters = _row("arith", True, 0.02), _row("count_letters", False, -0.03)
    facts = {**_row("fact_heldout", False, -0.01), "verifiable": False}
    up = E.transfer_claim([practised, letters, facts, _gold_row(0.01)])
    flat = E.transfer_claim([practised, letters, facts, _gold_row(-0.05)])
    assert up["holds"] is True
    assert up["title"] == "RL's practice transferred to open_tasks, never practised"
    assert "open_tasks (+0.09 gold [+0.01, +0.17])" in up["reading"]
    assert up["value"] == pytest.approx(0.09) and up["unit"] == "gold"
    assert flat["holds"] is False
    assert flat["title"] == "No transfer to count_letters, open_tasks, which RL never practised"
    assert "open_tasks (+0.03 gold [-0.05, +0.11]), never practised" in flat["reading"]
    # the figure is count_letters', named first, in points
    assert flat["value"] == pytest.approx(0.02) and flat["unit"] == "points"
    # the CLI and the Report pane print the figure the same way, in the claim's unit
    assert [claim_figure(c, pct) for c in (up, flat)] == ["+0.09", "+2 pts"]
    for claim in (up, flat):  # said once what the row is, and never among the other families
        assert "32 unverifiable tasks, scored by the hidden raters" in claim["reading"]
        assert "practice problems above the control beyond noise: none" in claim["reading"]
    # a left-out family below the control beyond noise is named in the title, whichever way
    # the verdict goes (the committed recipe on another CPU: open tasks up, letters down)
    fell = {**_row("count_letters", False, -0.28), "diff": -0.17, "hi": -0.05}
    mixed = E.transfer_claim([practised, fell, _gold_row(0.08)])
    assert mixed["holds"] is True
    assert mixed["title"] == ("RL's practice transferred to open_tasks, never practised; "
                              "count_letters fell below the control")
    assert "below the control beyond noise: count_letters (-17 points [-28, -5])" in \
        mixed["reading"]
    down_only = E.transfer_claim([practised, fell, _gold_row(-0.05)])
    assert down_only["holds"] is False and down_only["title"].endswith(
        "which RL never practised; count_letters fell below the control")
    assert "fell" not in up["title"] and "fell" not in flat["title"]
    # only the open tasks left out, on too few tasks: not measured
    few = E.transfer_claim([practised, _gold_row(0.01, n=12)])
    assert few["holds"] is None and "too few prompts" in few["reading"]
