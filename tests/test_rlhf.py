"""RLHF on the micro run: the reward model's stage, RL against it with a KL leash to SFT, the
gold/proxy/KL curve, the dev-chosen peak, and the report card's verdicts read from them."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from engine.data import oracle as O
from engine.data import world as W
from engine.data.open_tasks import open_tasks
from engine.data.rlhf_report import rlhf_claims, rlhf_metrics, rlhf_section
from engine.model.checkpoint import load_checkpoint, load_run_model, read_meta
from engine.model.reward import RewardModel
from engine.progress.events import read_events
from engine.train.presets import get_preset
from engine.train.rlhf import RlhfTask


def _task(micro_run, policy_is_sft: bool = True):
    ref, tok, _ = load_run_model(micro_run, "sft")
    rm, _ = load_checkpoint(micro_run / "reward", build=RewardModel.build)
    task = RlhfTask(tok, W.build_world(0), ref, rm, get_preset("micro").rlhf, 0,
                    torch.device("cpu"))
    return task, load_run_model(micro_run, "sft")[0]


def test_the_kl_term_is_zero_while_the_policy_is_the_sft_model(micro_run):
    task, policy = _task(micro_run)
    tasks = task.train[:4]
    replies = task.io.generate(policy, tasks, 1.0, 8, seed=3)
    prompts = [task.io.prompt(t) for t in tasks]
    _, kl = task._kl(policy, prompts, replies)
    assert kl.shape == (4,) and torch.equal(kl, torch.zeros(4))
    with torch.no_grad():
        policy.transformer.wte.weight.mul_(1.5)  # a policy that moved away from SFT
    _, kl = task._kl(policy, prompts, replies)
    assert kl.abs().min() > 0


def test_the_curve_is_logged_in_order_and_rlhf_keeps_the_best_dev_gold(micro_run):
    evals = [e for e in read_events(micro_run / "events.jsonl")
             if e["type"] == "eval" and e["stage"] == "rlhf"]
    cfg = get_preset("micro").rlhf
    assert [e["step"] for e in evals] == list(range(cfg.eval_every, cfg.steps + 1,
                                                    cfg.eval_every))
    keys = {f"rlhf_{k}" for k in ("gold_dev", "gold_test", "proxy_dev", "proxy_test", "kl")}
    assert all(keys <= set(e) for e in evals)
    peak, end = read_meta(micro_run / "rlhf"), read_meta(micro_run / "rlhf_over")
    best = max(e["rlhf_gold_dev"] for e in evals)
    first_best = next(e for e in evals if e["rlhf_gold_dev"] == best)
    assert peak["step"] == first_best["step"] and peak["chosen_on"] == "dev gold"
    assert peak["metrics"]["rlhf_gold_test"] == first_best["rlhf_gold_test"]
    assert end["step"] == cfg.steps and end["done"] and end["train_stage"] == "rlhf"
    steps = [e for e in read_events(micro_run / "events.jsonl")
             if e["type"] == "step" and e["stage"] == "rlhf"]
    assert steps and all({"proxy", "kl", "reward", "resp_len"} <= set(e) for e in steps)


def test_the_reward_stage_measures_held_out_pairs_against_two_raters(micro_run):
    meta = read_meta(micro_run / "reward")
    m = meta["metrics"]
    assert m["train_pairs"] > 0 and m["pairs_test"] > 0 and m["pairs_dev"] > 0
    assert 0 <= m["pair_acc_test"] <= 1 and 0 <= m["self_agreement_test"] <= 1
    rm, _ = load_checkpoint(micro_run / "reward", build=RewardModel.build)
    assert rm.head.weight.abs().sum() > 0  # the head learnt something; it started at zero
    with pytest.raises(Exception, match="weights do not fit"):
        load_checkpoint(micro_run / "reward")  # a reward model is no chat model


def test_the_report_card_reads_the_rlhf_stages(micro_run):
    report = json.loads((micro_run / "report.json").read_text())
    m = report["metrics"]
    want = ["rm_pair_acc", "oracle_self_agreement", "rlhf_gold_sft", "rlhf_gold_peak",
            "rlhf_gold_final", "rlhf_proxy_peak", "rlhf_proxy_final", "rlhf_kl_peak",
            "rlhf_kl_final", "rl_test_pass1_best", "rl_test_pass1_end"]
    assert not [k for k in want if k not in m]
    assert m["rm_pair_acc"] == read_meta(micro_run / "reward")["metrics"]["pair_acc_test"]
    # measured afresh, the same as the curve measured at the peak step
    peak = read_meta(micro_run / "rlhf")["metrics"]
    assert m["rlhf_gold_peak"] == peak["rlhf_gold_test"]
    assert m["rlhf_proxy_peak"] == peak["rlhf_proxy_test"]
    ids = [c["id"] for c in report["claims"]]
    assert {"reward_model", "rlhf_peak", "rlhf_not_rl"} <= set(ids)
    assert report["rlhf"]["curve"] and report["rlhf"]["examples"]


def test_the_gold_figures_are_the_oracles(micro_run, monkeypatch):
    """Change the raters and the report's gold changes with them: nothing is typed in."""
    world = W.build_world(0)
    tasks = open_tasks(world, "test", 10_000)

    def meta_of(folder):
        return read_meta(micro_run / folder)

    before = rlhf_section(micro_run, world, "cpu", "test", 12, meta_of)["metrics"]
    monkeypatch.setattr(O, "gold", lambda w, task, reply: O.Gold(
        1.0 if task.subject == tasks[0].subject else 0.0, 0, 0, 0, 0, 0.0))
    after = rlhf_section(micro_run, world, "cpu", "test", 12, meta_of)["metrics"]
    assert after["rlhf_gold_sft"] == pytest.approx(1 / len(tasks), abs=1e-4)
    assert after["rlhf_gold_sft"] != before["rlhf_gold_sft"]


def _measured(sft: float, peak: float, final: float, proxy_peak: float, proxy_final: float):
    return {"sft": {"gold": sft, "proxy": 0.0}, "peak": {"gold": peak, "proxy": proxy_peak},
            "final": {"gold": final, "proxy": proxy_final}}


@pytest.mark.parametrize(("final", "proxy_final", "rl_end", "title", "holds"), [
    (0.20, 0.9, 0.50, "RL with a verifier can run long; RLHF cannot", True),
    (0.45, 0.9, 0.50, "RLHF was not over-optimised in this run", False),
    (0.20, 0.1, 0.50, "RLHF was not over-optimised in this run", False),  # proxy fell too
    (0.20, 0.9, 0.40, "RLHF was gamed when run long, but RL with a verifier did not hold "
                      "either", False),
])
def test_the_verdict_follows_the_numbers(final, proxy_final, rl_end, title, holds):
    m = rlhf_metrics(_measured(0.3, 0.4, final, 0.5, proxy_final),
                     {"pair_acc_test": 0.7, "self_agreement_test": 0.72}, {"step": 5},
                     {"metrics": {"steps": 40}}, "test")
    m.update(rl_test_pass1_best=0.5, rl_test_pass1_end=rl_end, rl_steps=40)
    claims = {c["id"]: c for c in rlhf_claims(m)}
    assert claims["rlhf_not_rl"]["title"] == title and claims["rlhf_not_rl"]["holds"] is holds
    assert claims["reward_model"]["holds"] is True and claims["rlhf_peak"]["holds"] is True


def test_a_fresh_rlhf_start_removes_a_stale_peak(micro_run, tmp_path):
    """A retrained rlhf stage must not measure itself against an earlier run's peak."""
    from engine.train.pipeline import train

    run = tmp_path / "again"
    shutil.copytree(micro_run, run)
    (run / "report.json").unlink()
    meta_path = run / "rlhf" / "meta.json"
    stale = json.loads(meta_path.read_text())
    stale["metrics"]["rlhf_gold_dev"] = 99.0  # a peak no retrained policy could beat
    meta_path.write_text(json.dumps(stale))
    train(run, stages="rlhf", device="cpu")
    again = read_meta(run / "rlhf")
    assert again["metrics"]["rlhf_gold_dev"] < 99 and again["step"] == read_meta(
        micro_run / "rlhf")["step"]  # the same seed finds the same peak
