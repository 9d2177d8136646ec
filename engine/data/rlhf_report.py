"""The report card's RLHF section: "RLHF is not RL", measured.

It reads what the reward and rlhf stages left (the reward model's held-out pair accuracy, the
gold/proxy/KL curve in events.jsonl, the dev-chosen peak in ``rlhf/`` and the end in
``rlhf_over/``) and measures the SFT model and both RLHF models afresh on the split's open tasks,
with the same code as the curve (engine/data/open_replies.py). Beside it, RL with a verifier's
test accuracy over its own steps: does it hold as it runs on?
"""

from __future__ import annotations

from pathlib import Path

from engine.data.open_replies import OpenReplies, judged
from engine.data.open_tasks import open_tasks
from engine.data.stats import GOLD
from engine.run import RLHF, RLHF_PEAK, RunFolder

FALL = 0.10  # gold this far below its peak at the end, proxy above: over-optimised
HOLD = 0.03  # RL's test accuracy at the end this close to its best: it held
RM_SHARE = 0.9  # the reward model agrees with a rater at least this share of two raters' rate
N_EXAMPLES = 3


def stage_curve(run_dir: Path, stage: str, key: str) -> list[dict]:
    """The ``eval`` events of ``stage`` that hold ``key``, by step (a resumed step's last)."""
    from engine.progress.events import read_events

    points: dict[int, dict] = {}
    for e in read_events(RunFolder(run_dir).events):
        if e.get("type") == "eval" and e.get("stage") == stage and key in e:
            step = int(e.get("step", 0))
            points[step] = {"step": step, **{k: v for k, v in e.items()
                                             if k.startswith(("rlhf_", "test_pass1"))}}
    return [points[s] for s in sorted(points)]


def rlhf_section(run_dir: Path, world, device, split: str, max_tokens: int,
                 meta_of) -> dict | None:
    """The section, or None where the run has no RLHF models. ``meta_of(folder)``: a stage's
    meta.json ({} where absent)."""
    from engine.model.checkpoint import load_checkpoint, load_run_model
    from engine.model.reward import RewardModel

    run = RunFolder(run_dir)
    if not all(run.has_model(f) for f in ("sft", "reward", RLHF_PEAK, RLHF.folder)):
        return None
    tasks = open_tasks(world, split, 10_000)
    rm, _ = load_checkpoint(run.model_dir("reward"), device, build=RewardModel.build)
    measured = {}
    for column, folder in (("sft", "sft"), ("peak", RLHF_PEAK), ("final", RLHF.folder)):
        model, tok, _ = load_run_model(run_dir, folder, device=device)
        measured[column] = judged(OpenReplies(tok), model.eval(), rm, world, tasks, max_tokens)
        del model
    rm_meta, peak, over = meta_of("reward"), meta_of(RLHF_PEAK), meta_of(RLHF.folder)
    m = rlhf_metrics(measured, rm_meta.get("metrics", {}), peak, over, split)
    rl_curve = stage_curve(run_dir, "rl", "test_pass1")
    m.update(rl_hold_metrics(rl_curve))
    examples = [{"prompt": t.prompt, "subject": t.subject,
                 **{c: {"text": got["texts"][i], "gold": got["golds"][i],
                        "proxy": round(got["proxies"][i], 3)} for c, got in measured.items()}}
                for i, t in enumerate(tasks[:N_EXAMPLES])]
    return {"metrics": m, "curve": stage_curve(run_dir, "rlhf", "rlhf_gold_dev"),
            "rl_test_curve": rl_curve, "examples": examples, "n_tasks": len(tasks),
            "claims": rlhf_claims(m)}


def rlhf_metrics(measured: dict, rm: dict, peak: dict, over: dict, split: str) -> dict:
    """eval --json's RLHF keys from the measurements and the stages' metas."""
    pm, om = peak.get("metrics", {}), over.get("metrics", {})
    return {"rm_pair_acc": rm.get(f"pair_acc_{split}"),
            "oracle_self_agreement": rm.get(f"self_agreement_{split}"),
            "rm_pairs": rm.get(f"pairs_{split}"), "rm_train_pairs": rm.get("train_pairs"),
            **{f"rlhf_gold_{c}": got["gold"] for c, got in measured.items()},
            **{f"rlhf_proxy_{c}": got["proxy"] for c, got in measured.items()},
            "rlhf_kl_peak": pm.get("rlhf_kl"), "rlhf_kl_final": om.get("rlhf_kl"),
            "rlhf_peak_step": peak.get("step"), "rlhf_steps": om.get("steps")}


def rl_hold_metrics(curve: list[dict]) -> dict:
    """RL with a verifier over its steps: best and last test pass@1 of its periodic eval."""
    values = [p["test_pass1"] for p in curve if p.get("test_pass1") is not None]
    return {"rl_test_pass1_best": max(values) if values else None,
            "rl_test_pass1_end": values[-1] if values else None,
            "rl_steps": curve[-1]["step"] if curve else None}


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _num(x) -> str:
    return "n/a" if x is None else f"{x:+.2f}"


def rlhf_claims(m: dict) -> list[dict]:
    """Three verdicts, each titled by its numbers: the reward model learnt the raters; brief
    RLHF helps; long RLHF is gamed while RL with a verifier holds."""
    g = m.get
    acc, agree = g("rm_pair_acc"), g("oracle_self_agreement")
    rm_ok = None if acc is None or not agree else acc >= RM_SHARE * agree
    sft, peak, final = g("rlhf_gold_sft"), g("rlhf_gold_peak"), g("rlhf_gold_final")
    ppeak, pfinal = g("rlhf_proxy_peak"), g("rlhf_proxy_final")
    helped = None if peak is None or sft is None else peak > sft + 1e-9
    fell = (None if None in (peak, final, ppeak, pfinal)
            else final <= peak - FALL + 1e-9 and pfinal > ppeak)
    best, end = g("rl_test_pass1_best"), g("rl_test_pass1_end")
    held = None if best is None or end is None else end >= best - HOLD - 1e-9
    return [
        {"id": "reward_model", "holds": rm_ok, "value": acc, "self_agreement": agree,
         "title": ("The reward model learnt the raters' preferences" if rm_ok else
                   "The reward model falls short of the raters' preferences"),
         "reading": (f"On held-out pairs of SFT replies ({g('rm_pairs')} pairs, test tasks) the "
                     f"reward model agrees with a rater {_pct(acc)} of the time; two raters "
                     f"agree with each other {_pct(agree)} (the ceiling; the goal is "
                     f"{RM_SHARE:.0%} of it). It learnt from {g('rm_train_pairs')} labelled "
                     "pairs of train tasks.")},
        {"id": "rlhf_peak", "holds": helped, "value": peak, "sft": sft, "unit": GOLD,
         "title": ("A little RLHF improved on SFT" if helped else
                   "RLHF did not improve on SFT at its peak"),
         "reading": (f"Gold quality (the hidden raters' score, never a training signal) on "
                     f"test tasks: SFT {_num(sft)}, RLHF at the peak chosen on dev (step "
                     f"{g('rlhf_peak_step')}) {_num(peak)}.")},
        {"id": "rlhf_not_rl", "holds": _both(fell, held), "unit": GOLD,
         "value": final, "peak": peak, "proxy_peak": ppeak, "proxy_final": pfinal,
         "rl_best": best, "rl_end": end, "title": _not_rl_title(fell, held),
         "reading": (f"Run on to step {g('rlhf_steps')}, RLHF's reward-model score went from "
                     f"{_num(ppeak)} at the peak to {_num(pfinal)} while gold went from "
                     f"{_num(peak)} to {_num(final)} (KL to SFT {g('rlhf_kl_peak')} -> "
                     f"{g('rlhf_kl_final')} nats a reply): "
                     + ("the policy found what the reward model over-rewards. " if fell else
                        f"no fall of {FALL:.2f} with a rising proxy. ")
                     + f"RL with the exact verifier, over {g('rl_steps')} steps, ended at "
                       f"{_pct(end)} test pass@1 against its best {_pct(best)} ("
                     + ("held" if held else "fell") + f", within {HOLD:.2f} is held).")},
    ]


def _both(a: bool | None, b: bool | None) -> bool | None:
    return None if a is None or b is None else a and b


def _not_rl_title(fell: bool | None, held: bool | None) -> str:
    if fell and held:
        return "RL with a verifier can run long; RLHF cannot"
    if fell:
        return "RLHF was gamed when run long, but RL with a verifier did not hold either"
    if fell is None:
        return "RLHF run long: not measured"
    return "RLHF was not over-optimised in this run"
