"""The report card: what each stage of a run can do, measured by sampling on held-out problems.

``evaluate_run(run)`` loads the run's models (base, sft, rl, and the extra-SFT control in
``sft_control/`` when the trainer made one), asks each the same held-out problems of every task
family (engine/data/tasks.py), checks the answers with the exact verifier, and writes
``report.json``: pass@1 per family x stage, the lecture's claims as numbers with a reading in
words, a few real answers per cell, and the RL reward / response-length curve from
``events.jsonl``. Where the run has both RL and the control, its transfer table (RL minus the
control per family) also asks both the unverifiable open tasks and scores their replies in gold,
as RLHF does: the one row whose judge is the hidden raters, not the verifier.

Decoding is greedy (temperature 0) by default: every stage answers the same prompts the same
way it would answer them again, so differences between stages are the models', not the dice's.
All prompts of one family go through ``generate_batch`` together, so a tiny run's whole eval
takes seconds.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from engine.data import tasks as T
from engine.data import wordings as Wd
from engine.data import world as W
from engine.data.judge import answer_way, is_refusal, judge, recognise, works_first
from engine.data.open_replies import OpenReplies, judged
from engine.data.open_tasks import OpenTask, open_tasks
from engine.data.rlhf_report import rlhf_section
from engine.data.stats import GOLD, POINTS, paired_difference, paired_mean_difference
from engine.run import META_FILE, REPORT_STAGES, RunFolder, read_json, resolve_run, world_seed

CHAT_FAMILIES = ("arith", "count_letters", "decimal_cmp", "fact_known", "fact_heldout",
                 "unknown", "identity", "paraphrase", "template")
N_EXAMPLES = 3
BATCH = 128  # rows per generate_batch call: large enough to amortise, small enough for RAM
MARGIN = 8  # tokens a budget allows beyond the longest reference answer of its family
PASSK_SAMPLES, PASSK_K, PASSK_PROBLEMS = 16, 8, 48  # pass@k: n samples at T=1 per problem

Progress = Callable[..., None]  # progress(done, total, label)


# -- problems and budgets ---------------------------------------------------------------------

_KIND_FAMILY = {"add": "arith", "shop": "arith", "count": "count_letters", "dec": "decimal_cmp",
                "identity": "identity"}


def token_budgets(tok, world: W.World, block_size: int) -> dict[str, int]:
    """Per family: the longest flawless SFT answer in tokens, plus a margin.

    A budget any shorter would cut off correct work; any longer only wastes decoding time.
    """
    longest: dict[str, int] = {}
    for conv in W.sft_conversations(world, labeler_error_rate=0.0, include_idk=True, n=800):
        kind = next((k for k, _, _ in Wd.match(conv[0]["content"])), "")
        fam = _KIND_FAMILY.get(kind, "fact")
        n = len(tok.encode(conv[-1]["content"])) + 1  # + <|assistant_end|>
        longest[fam] = max(longest.get(fam, 0), n)
    out = {fam: min(block_size // 2, longest.get(fam, 32) + MARGIN) for fam in
           ("arith", "count_letters", "decimal_cmp", "fact", "identity")}
    out["fact_known"] = out["fact_heldout"] = out["unknown"] = out.pop("fact")
    out["paraphrase"] = out["template"] = max(out["arith"], out["fact_known"])
    return out


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k from n samples of which c are right: 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


# -- sampling ---------------------------------------------------------------------------------

def _generate(model, prompts: list[list[int]], max_tokens: int, stop_ids: list[int],
              temperature: float, seed: int) -> list[list[int]]:
    from engine.model.sampler import SampleSettings, generate_batch

    out: list[list[int]] = []
    for i in range(0, len(prompts), BATCH):
        settings = SampleSettings(temperature=temperature, top_k=50, max_tokens=max_tokens,
                                  seed=seed + i)
        out += generate_batch(model, prompts[i: i + BATCH], settings, stop_ids=stop_ids)
    return out


def chat_answers(model, tok, problems: list[T.Problem], max_tokens: int, temperature: float,
                  seed: int, prefix: str = "") -> list[dict]:
    """Each problem answered in the chat format; ``prefix`` is forced as the answer's start."""
    from engine.tokens.chat import render_prompt

    end = tok.special_id("<|assistant_end|>")
    specials = set(tok.specials.values())
    pre = tok.encode(prefix) if prefix else []
    prompts = [render_prompt(tok, p.messages) + pre for p in problems]
    rows = []
    for p, ids in zip(problems, _generate(model, prompts, max_tokens, [end], temperature, seed),
                      strict=True):
        # the reply is what comes before the first special token: a base model that never
        # ends a turn goes on into a new document, which is not part of its answer
        cut = next((i for i, t in enumerate(ids) if t in specials), len(ids))
        text = prefix + tok.decode(ids[:cut])
        verdict = judge(p, text)
        # Chat format: the turn ends with <|assistant_end|> and holds no other special token.
        formatted = bool(ids) and ids[-1] == end and not any(t in specials for t in ids[:-1])
        rows.append({"prompt": p.prompt, "answer": text.strip(), "expected": p.answer,
                     "correct": bool(verdict.correct), "reason": verdict.reason,
                     "format": formatted})
    return rows


def _pass_at_k(model, tok, problems: list[T.Problem], max_tokens: int, seed: int) -> dict:
    """pass@1 and pass@k (unbiased, from PASSK_SAMPLES samples at temperature 1 per problem)."""
    repeated = [p for p in problems for _ in range(PASSK_SAMPLES)]
    rows = chat_answers(model, tok, repeated, max_tokens, 1.0, seed + 7)
    p1 = pk = 0.0
    for i in range(len(problems)):
        c = sum(r["correct"] for r in rows[i * PASSK_SAMPLES: (i + 1) * PASSK_SAMPLES])
        p1 += c / PASSK_SAMPLES
        pk += pass_at_k(PASSK_SAMPLES, c, PASSK_K)
    n = max(len(problems), 1)
    return {"pass1": round(p1 / n, 4), "passk": round(pk / n, 4), "n": len(problems),
            **_by_strategy(rows)}


def _by_strategy(rows: list[dict]) -> dict:
    """How sampled replies went about it (work first / answer first among the replies that
    state an answer; how many state none), how often each way was right, and one right reply
    of each way as an example."""
    ways = [answer_way(r["answer"]) for r in rows]
    answered = [w for w in ways if w != "no_answer"]
    out: dict = {"share_work_first": (round(answered.count("work_first") / len(answered), 4)
                                      if answered else None),
                 "share_no_answer": round(ways.count("no_answer") / len(ways), 4) if ways
                 else None}
    for way in ("work_first", "answer_first"):
        mine = [r for r, w in zip(rows, ways, strict=True) if w == way]
        out[f"pass1_{way}"] = _share(mine)
        out[f"n_{way}"] = len(mine)
        out[f"example_{way}"] = next((r for r in mine if r["correct"]), None)
    return out


def _completions(model, tok, pairs: list[tuple[str, str]], seed: int) -> list[dict]:
    """A base model continues held-out fact sentences; right if the answer comes next."""
    from engine.tokens.chat import render_document

    bos = tok.special_id("<|bos|>")
    prompts = [render_document(tok, prefix) for prefix, _ in pairs]
    longest = max((len(tok.encode(" " + ans)) for _, ans in pairs), default=4)
    outs = _generate(model, prompts, longest + 2, [bos], 0.0, seed)
    rows = []
    for (prefix, ans), ids in zip(pairs, outs, strict=True):
        text = tok.decode([t for t in ids if t != bos])
        ok = re.match(rf"\s*{re.escape(ans)}\b", text, flags=re.IGNORECASE) is not None
        rows.append({"prompt": prefix, "answer": text.strip(), "expected": ans, "correct": ok})
    return rows


# -- one stage --------------------------------------------------------------------------------

def _eval_stage(stage: str, model, tok, world: W.World, problems: dict[str, list[T.Problem]],
                budgets: dict[str, int], temperature: float, seed: int, split: str,
                tick: Callable[[str], None]) -> tuple[dict[str, list[dict]], dict]:
    """Rows (prompt, answer, expected, correct, reason, format) per family for one stage's
    model, and its sampled pass@1 / pass@k on the first sums."""
    rows: dict[str, list[dict]] = {}
    for fam in CHAT_FAMILIES:
        rows[fam] = chat_answers(model, tok, problems[fam], budgets[fam], temperature, seed)
        tick(f"{stage}: {fam}")
    if stage == "base":
        # The very facts the chat models are asked about, as sentences to complete, in one
        # pass: which ones the base knows (a refusal of one of those is a false refusal; of
        # one it never learnt, honest), and among them the held-out ones.
        statements = {f"{f.subject}:{f.kind}": f.statement for f in W.facts(world)}
        asked = problems["fact_known"] + problems["fact_heldout"]
        rows["base_knows"] = _completions(model, tok, [(statements[p.key], p.answer)
                                                      for p in asked], seed)
        rows["complete_heldout"] = rows["base_knows"][len(problems["fact_known"]):]
    else:
        # Tokens to think: the same arithmetic, but the answer must come first.
        rows["answer_first"] = chat_answers(model, tok, problems["arith"], 12, temperature,
                                             seed, prefix="Answer:")
    # pass@k of chat models only: the base model never answers a chat (its 0% needs no samples)
    sampled = {} if stage == "base" else _pass_at_k(model, tok, problems["arith"][:PASSK_PROBLEMS],
                                                    budgets["arith"], seed)
    tick(f"{stage}: extra")
    return rows, sampled


def _open_answers(model, tok, world: W.World, tasks: list[OpenTask],
                  max_tokens: int) -> list[dict]:
    """Greedy replies to the open tasks with their gold, measured as RLHF's curve and its
    report section measure it (open_replies.judged; no reward model: only gold is wanted)."""
    got = judged(OpenReplies(tok), model, None, world, tasks, max_tokens)
    return [{"prompt": t.prompt, "answer": text, "gold": g}
            for t, text, g in zip(tasks, got["texts"], got["golds"], strict=True)]


def _share(rows: list[dict], key: str = "correct") -> float | None:
    return round(sum(bool(r[key]) for r in rows) / len(rows), 4) if rows else None


# -- the report -------------------------------------------------------------------------------

def evaluate_run(run_dir, device: str = "cpu", n_per_family: int = 100,
                 progress: Progress | None = None, seed: int = 0,
                 temperature: float = 0.0, split: str = "test") -> dict:
    """Evaluate every stage the run has on ``split``, write its report atomically, return it.

    A device this machine lacks (or a misspelt one) is a ValueError saying what is available,
    raised before any work."""
    import torch

    from engine.model.checkpoint import load_run_model
    from engine.model.device import pick_device

    dev = pick_device(device)
    run = RunFolder(resolve_run(run_dir))
    run_dir = run.path
    t0 = time.perf_counter()
    info = run.read_info()
    preset = info.get("preset_config") or {}
    world = W.build_world(world_seed(info))
    stages = [s for s, folder in REPORT_STAGES.items() if run.has_model(folder)]
    problems = {fam: T.eval_problems(world, fam, n_per_family, seed, split)
                for fam in CHAT_FAMILIES}
    # the open tasks (and reply budget) of RLHF's test gold, asked of RL and the control
    open_stages = OPEN_STAGES if set(OPEN_STAGES) <= set(stages) else ()
    open_asked, open_max = open_tasks(world, split, 10_000), int(
        (preset.get("rlhf") or {}).get("max_tokens", 96))

    total, done = len(stages) * (len(CHAT_FAMILIES) + 1) + len(open_stages) or 1, 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, label)

    results: dict[str, dict[str, list[dict]]] = {}
    sampled: dict[str, dict] = {}
    budgets: dict[str, int] = {}
    torch.manual_seed(seed)
    for stage in stages:
        model, tok, _ = load_run_model(run_dir, REPORT_STAGES[stage], device=dev)
        model.eval()
        if not budgets:
            budgets = token_budgets(tok, world, model.config.block_size)
        results[stage], sampled[stage] = _eval_stage(stage, model, tok, world, problems, budgets,
                                                     temperature, seed, split, tick)
        if stage in open_stages:
            results[stage][OPEN_FAMILY] = _open_answers(model, tok, world, open_asked, open_max)
            tick(f"{stage}: open tasks")
        del model
    labelers = W.labeler_accuracy(world, float(preset.get("labeler_error_rate", 0.3)), split)
    rl_cfg = preset.get("rl") or {}
    report = build_report(run_dir.name, seed, results, labelers, rl_curve(run_dir), temperature,
                          sampled=sampled, split=split,
                          probe=_stage_meta(run_dir, "sft").get("probe") or None,
                          tuned_on=(preset.get("notes") or {}).get("tuned_on"),
                          rl_families=tuple(rl_cfg.get("families") or T.RL_FAMILIES),
                          sft_work_first=sft_data_work_first(
                              world, preset, tuple(rl_cfg.get("families") or T.RL_FAMILIES)),
                          control_compute=control_compute_ratio(run_dir))
    add_rlhf(report, rlhf_section(run_dir, world, dev, split, open_max,
                                  lambda folder: _stage_meta(run_dir, folder)))
    report["eval_s"] = round(time.perf_counter() - t0, 2)
    report["budgets"] = budgets
    write_report(run_dir, report, split)
    return report


def add_rlhf(report: dict, section: dict | None) -> None:
    """Put the RLHF section (engine/data/rlhf_report.py) into a report: its figures among the
    metrics, its verdicts among the claims, its curve and examples under ``rlhf``."""
    if section is None:
        return
    report["metrics"].update({k: v for k, v in section["metrics"].items() if v is not None})
    report["claims"] += section["claims"]
    report["rlhf"] = {k: v for k, v in section.items() if k not in ("metrics", "claims")}


def sft_data_work_first(world: W.World, preset: dict,
                        families: tuple[str, ...] = T.RL_FAMILIES) -> float | None:
    """Share of the SFT data's replies to the problems RL practises (``families``) that work
    before answering: the ways of answering RL could have learnt there by imitation, over the
    same families as RL's own share."""
    convs = W.sft_conversations(world,
                                labeler_error_rate=float(preset.get("labeler_error_rate", 0.3)),
                                include_idk=bool(preset.get("include_idk", True)))
    rows = []
    for conv in convs:
        problem = recognise(world, conv[0]["content"])
        if problem is not None and problem.family in families:
            rows.append({"correct": works_first(conv[-1]["content"])})
    return _share(rows)


def _stage_meta(run_dir: Path, folder: str) -> dict:
    """A stage's meta.json as far as the report reads it, {} where absent or unreadable."""
    path = RunFolder(run_dir).model_dir(folder) / META_FILE
    try:
        return read_json(path) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def control_compute_ratio(run_dir: Path) -> float | None:
    """The control's compute over RL's (token-passes): ~1 when the control was matched on
    compute; None where either stage did not record it (the control then matched seconds)."""
    ctl_meta = _stage_meta(run_dir, "sft_control")
    if ctl_meta.get("matched_on", "compute") != "compute":
        return None  # matched on seconds: whatever its compute came to, it was not the basis
    rl, ctl = _stage_meta(run_dir, "rl").get("compute"), ctl_meta.get("compute")
    ok = all(isinstance(c, int | float) and c > 0 for c in (rl, ctl))
    return round(float(ctl) / float(rl), 3) if ok else None


def build_report(run: str, seed: int, results: dict[str, dict[str, list[dict]]],
                 labelers: float, curve: list[dict], temperature: float = 0.0,
                 sampled: dict[str, dict] | None = None, split: str = "test",
                 probe: dict | None = None, tuned_on: str | None = None,
                 rl_families: tuple[str, ...] = T.RL_FAMILIES,
                 sft_work_first: float | None = None,
                 control_compute: float | None = None) -> dict:
    """The report object from the rows each stage produced (pure: no models, no files).
    ``control_compute``: the control's compute over RL's (control_compute_ratio)."""
    sampled = sampled or {}
    fams: dict[str, dict] = {}
    for fam in CHAT_FAMILIES:
        row: dict = {s: _share(r[fam]) for s, r in results.items()}
        if fam == "arith":
            row["labelers"] = round(labelers, 4)
        rows = next((r[fam] for r in results.values()), [])
        row["n"] = len({r["prompt"] for r in rows})  # distinct prompts
        fams[fam] = row
    m: dict = {f"n_eval_{fam}": fams[fam]["n"] for fam in CHAT_FAMILIES}

    def get(stage: str, fam: str, key: str = "correct"):
        rows = results.get(stage, {}).get(fam)
        return _share(rows, key) if rows is not None else None

    for stage, tag in REPORT_STAGES.items():  # a metric's suffix is the stage's folder name
        chat_rows = [r for f in CHAT_FAMILIES for r in results.get(stage, {}).get(f, [])]
        m[f"format_{tag}"] = _share(chat_rows, "format")
        m[f"arith_greedy_{tag}"] = get(stage, "arith")
        m[f"arith_pass1_{tag}"] = (sampled.get(stage) or {}).get("pass1")
        m[f"arith_passk_{tag}"] = (sampled.get(stage) or {}).get("passk")
        for fam in ("count_letters", "decimal_cmp", "fact_known", "identity", "paraphrase",
                    "template"):
            m[f"{fam}_{tag}"] = get(stage, fam)
        m[f"knowledge_heldout_{tag}"] = get(stage, "fact_heldout")
        m[f"refusal_unknown_{tag}"] = get(stage, "unknown")
        m[f"answer_first_{tag}"] = get(stage, "answer_first")
        m[f"work_first_{tag}"] = get(stage, "arith") if stage != "base" else None
        if stage in results:
            facts = results[stage]["fact_known"] + results[stage]["fact_heldout"]
            m[f"refusal_known_{tag}"] = _share([{"correct": is_refusal(r["answer"])}
                                                for r in facts])
            knows = results.get("base", {}).get("base_knows")
            if knows is not None and len(knows) == len(facts):
                m[f"false_refusal_{tag}"] = _share([{"correct": is_refusal(r["answer"])}
                                                    for r, k in zip(facts, knows, strict=True)
                                                    if k["correct"]])
            tmpl = m[f"template_{tag}"]
            m[f"paraphrase_ratio_{tag}"] = (round(m[f"paraphrase_{tag}"] / tmpl, 4)
                                            if tmpl else None)
    m["knowledge_complete_base"] = get("base", "complete_heldout")
    m["base_knows_asked_facts"] = get("base", "base_knows")
    m["arith_labelers"] = round(labelers, 4)
    m["passk_k"] = PASSK_K
    m["passk_samples"] = PASSK_SAMPLES
    m["n_eval_passk"] = next((s["n"] for s in sampled.values() if s.get("n")), None)
    m["control_compute_ratio"] = control_compute if "control" in results else None
    if probe:
        m["probe_facts"] = probe.get("facts")
        m["probe_unknown"] = probe.get("unknown")
    transfer = transfer_rows(results, rl_families)
    for row in transfer:
        fam = row["family"]
        m[f"transfer_{fam}"], m[f"transfer_{fam}_lo"] = row["diff"], row["lo"]
        m[f"transfer_{fam}_hi"] = row["hi"]
    m.update(_thinking_metrics(curve, sampled.get("rl") or {}, sft_work_first))
    m = {k: v for k, v in m.items() if v is not None or k in REQUIRED}
    examples = {fam: {s: r[fam][:N_EXAMPLES] for s, r in results.items() if fam in r}
                for fam in (*CHAT_FAMILIES, "answer_first", "complete_heldout")}
    examples = {f: v for f, v in examples.items() if v}
    return {"run": run, "seed": seed, "split": split, "tuned_on": tuned_on,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "decoding": {"temperature": temperature, "top_k": 50 if temperature > 0 else None,
                         "pass_at_k": {"samples": PASSK_SAMPLES, "k": PASSK_K,
                                       "temperature": 1.0}},
            "metrics": m, "families": fams, "examples": examples, "rl_curve": curve,
            "rl_families": list(rl_families), "transfer": transfer,
            "claims": claims(m, curve) + [transfer_claim(transfer),
                                          thinking_claim(m, sampled.get("rl") or {})]}


# families whose test items are half sums (engine.data.tasks.paraphrase_items): where RL
# practised sums they are partly practised, neither transfer nor its absence
HALF_SUMS = ("paraphrase", "template")
FEW_PROMPTS = 30  # a transfer row on fewer distinct prompts is shown, greyed, and never read
# The unverifiable tasks' row: greedy replies of RL and the control to every open task of the
# split, scored by the hidden raters (engine/data/oracle.py) in gold, not pass/fail.
OPEN_FAMILY, OPEN_STAGES = "open_tasks", ("rl", "control")


def transfer_rows(results: dict[str, dict[str, list[dict]]],
                  rl_families: tuple[str, ...]) -> list[dict]:
    """Per family, RL minus the compute-matched control on the same test prompts (greedy), with
    a paired 95% interval; practised (an RL family) or not."""
    rl, ctl = results.get("rl") or {}, results.get("control") or {}
    rows = []
    for fam in CHAT_FAMILIES:
        a, b = rl.get(fam), ctl.get(fam)
        if not a or not b or [r["prompt"] for r in a] != [r["prompt"] for r in b]:
            continue
        d, lo, hi = paired_difference([r["correct"] for r in a], [r["correct"] for r in b])
        partly = fam in HALF_SUMS and "arith" in rl_families
        rows.append({"family": fam, "trained": fam in rl_families, "partly": partly,
                     "verifiable": fam in T.RL_FAMILIES, "rl": _share(a), "control": _share(b),
                     "diff": round(d, 4), "lo": round(lo, 4), "hi": round(hi, 4), "n": len(a),
                     "few": len(a) < FEW_PROMPTS})
    row = open_transfer_row(rl.get(OPEN_FAMILY) or [], ctl.get(OPEN_FAMILY) or [])
    return rows + ([row] if row else [])


def open_transfer_row(rl: list[dict], control: list[dict]) -> dict | None:
    """RL minus the control in gold on the same open tasks (rows with ``prompt`` and ``gold``,
    in the same order), or None where they were not both asked the same 2+ tasks. Never
    practised by RL, and not verifiable: its only judge is the hidden raters."""
    prompts = [r["prompt"] for r in rl]
    if len(set(prompts)) < 2 or prompts != [r["prompt"] for r in control]:
        return None
    a, b = [float(r["gold"]) for r in rl], [float(r["gold"]) for r in control]
    # Gold is a score (sums of fact, tone and length terms), not a pass/fail, so Newcombe's
    # interval for paired proportions does not apply. The paired t interval does, and unlike
    # a bootstrap it has no seed and can be checked by hand from the two lists; at 30+ tasks
    # the mean difference is close enough to normal for its coverage.
    d, lo, hi = paired_mean_difference(a, b)
    n = len(set(prompts))
    return {"family": OPEN_FAMILY, "trained": False, "partly": False, "verifiable": False,
            "unit": GOLD, "rl": round(sum(a) / len(a), 4), "control": round(sum(b) / len(b), 4),
            "diff": round(d, 4), "lo": round(lo, 4), "hi": round(hi, 4), "n": n,
            "few": n < FEW_PROMPTS}


def _thinking_metrics(curve: list[dict], rl_sampled: dict, sft_work_first: float | None) -> dict:
    """The ways-of-answering figures: shares of replies that work before answering (among the
    replies that state an answer) in the SFT data, over RL training, and in RL's test samples."""
    first, last = (curve[0], curve[-1]) if curve else ({}, {})
    shares = [p["work_first"] for p in curve if p.get("work_first") is not None]
    return {"rl_len_start": first.get("resp_len"), "rl_len_end": last.get("resp_len"),
            "rl_share_work_first_start": shares[0] if shares else None,
            "rl_share_work_first_end": shares[-1] if shares else None,
            "sft_data_share_work_first": sft_work_first,
            "rl_pass1_work_first": rl_sampled.get("pass1_work_first"),
            "rl_pass1_answer_first": rl_sampled.get("pass1_answer_first"),
            "rl_sampled_share_work_first": rl_sampled.get("share_work_first"),
            "rl_sampled_share_no_answer": rl_sampled.get("share_no_answer")}


REQUIRED = ("format_base", "format_sft", "knowledge_heldout_sft", "refusal_unknown_sft",
            "arith_pass1_sft", "arith_pass1_rl", "answer_first_sft", "work_first_sft",
            "count_letters_sft", "count_letters_rl", "decimal_cmp_sft", "decimal_cmp_rl",
            "arith_labelers", "arith_pass1_sft_control", "paraphrase_sft", "template_sft")


def rl_curve(run_dir: Path) -> list[dict]:
    """(step, reward, resp_len) of the RL stage's ``step`` events; a resumed step's last wins."""
    from engine.progress.events import read_events

    points: dict[int, dict] = {}
    for e in read_events(RunFolder(run_dir).events):
        if e.get("type") == "step" and e.get("stage") == "rl" and "reward" in e:
            points[int(e.get("step", 0))] = {"step": int(e.get("step", 0)),
                                             "reward": e.get("reward"),
                                             "resp_len": e.get("resp_len"),
                                             "work_first": e.get("work_first")}
    return [points[s] for s in sorted(points)]


# -- claims: the lecture's statements, read from the numbers ----------------------------------

def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _cmp(a, b, more: str = "higher than", less: str = "lower than", same: str = "equal to"):
    if a is None or b is None:
        return "not comparable to"
    return more if a > b + 1e-9 else less if a < b - 1e-9 else same


def _above(a, b) -> bool | None:
    """a strictly above b (None when either is missing)."""
    return None if a is None or b is None else a > b + 1e-9


def _at_least(a, b) -> bool | None:
    return None if a is None or b is None else a >= b - 1e-9


def _both(a: bool | None, b: bool | None) -> bool | None:
    return None if a is None or b is None else a and b


def _claim(cid: str, holds: bool | None, yes: str, no: str, reading: str, **figures) -> dict:
    """A claim whose title follows its numbers: ``holds`` None means not measured."""
    title = yes if holds else no if holds is not None else f"{yes} (not measured)"
    return {"id": cid, "title": title, "holds": holds, "reading": reading, **figures}


def claims(m: dict, curve: list[dict]) -> list[dict]:
    g = m.get
    think = _cmp(g("work_first_sft"), g("answer_first_sft"), "better", "worse", "no different")
    held, known = g("knowledge_heldout_sft"), g("fact_known_sft")
    probe = (f" Before SFT a probe of the base model marked {g('probe_unknown')} of "
             f"{g('probe_facts')} training facts unknown; SFT answers those with \"I don't "
             "know\"." if g("probe_facts") else "")
    out = [
        _claim("knowledge", _above(held, 0.5), "Knowledge comes from pretraining",
               "Held-out knowledge does not reach the chat model",
               f"Asked about entities that appear in no SFT row of any kind (test split), SFT "
               f"answers {_pct(held)} correctly; the training-fact recall check (entities SFT "
               f"drilled) gives {_pct(known)}. The base model completes "
               f"{_pct(g('knowledge_complete_base'))} of the same held-out fact sentences and "
               f"answers {_pct(g('knowledge_heldout_base'))} of the questions in the open-turn "
               "layout of its pretraining QA: what the chat model knows about them it can only "
               "have read in pretraining, and what it lost, SFT took.",
               value=held, base_completes=g("knowledge_complete_base"), recall=known),
        _claim("format", _both(_at_least(g("format_sft"), 0.95), _at_least(0.05, g("format_base"))),
               "SFT teaches the chat format", "SFT did not fully teach the chat format",
               f"{_pct(g('format_sft'))} of SFT answers end with <|assistant_end|> and hold no "
               f"stray special token; the base model, which saw questions in open turns in "
               f"pretraining but never a turn's end, does so {_pct(g('format_base'))} of the "
               "time.",
               value=g("format_sft"), base=g("format_base")),
        _claim("hallucination",
               _both(_at_least(g("refusal_unknown_sft"), 0.8),
                     _at_least(0.1, g("false_refusal_sft", g("refusal_known_sft")))),
               "The chat model says \"I don't know\" about people it never read of",
               "The chat model still invents answers (or refuses what it knows)",
               f"About people who exist nowhere, SFT says \"I don't know\" (and invents nothing) "
               f"{_pct(g('refusal_unknown_sft'))} of the time. Of questions about entities of the "
               f"world it refuses {_pct(g('refusal_known_sft'))}, and "
               f"{_pct(g('false_refusal_sft'))} of those whose fact the base model completes "
               f"(false refusals; the same refusal matcher throughout).{probe}",
               value=g("refusal_unknown_sft"), rl=g("refusal_unknown_rl"),
               refusal_known=g("refusal_known_sft"), false_refusal=g("false_refusal_sft")),
        _claim("paraphrase", _at_least(g("paraphrase_ratio_sft"), 0.8),
               "The chat model understands new wordings",
               "The chat model is bound to the wordings it was trained on",
               f"Known facts and sums asked in wordings no stage trained on: SFT "
               f"{_pct(g('paraphrase_sft'))}, against {_pct(g('template_sft'))} for the same "
               f"items in the template wording (ratio {g('paraphrase_ratio_sft')}).",
               value=g("paraphrase_sft"), template=g("template_sft"),
               ratio=g("paraphrase_ratio_sft")),
        _claim("tokens_to_think", _above(g("work_first_sft"), g("answer_first_sft")),
               "Models need tokens to think", "Working first did not help here",
               f"On held-out arithmetic SFT is right {_pct(g('work_first_sft'))} of the time "
               f"when it works column by column first, and {_pct(g('answer_first_sft'))} when "
               f"forced to start with \"Answer:\" — working first is {think}.",
               value=g("work_first_sft"), answer_first=g("answer_first_sft")),
        _rl_claim(m),
        _passk_claim(m),
    ]
    for fam in ("count_letters", "decimal_cmp"):
        out.append(_claim(fam, _above(g(f"{fam}_rl"), g(f"{fam}_sft")),
                          f"{fam}: RL improved on SFT", f"{fam}: RL did not improve on SFT",
                          f"{fam}: base {_pct(g(f'{fam}_base'))}, SFT {_pct(g(f'{fam}_sft'))}, "
                          f"RL {_pct(g(f'{fam}_rl'))} (greedy).",
                          value=g(f"{fam}_rl"), base=g(f"{fam}_base"), sft=g(f"{fam}_sft")))
    if len(curve) >= 2:
        a, b = curve[0], curve[-1]
        out.append({"id": "rl_dynamics", "title": "RL dynamics", "holds": None,
                    "value": b.get("reward"),
                    "reward_first": a.get("reward"), "resp_len_first": a.get("resp_len"),
                    "resp_len_last": b.get("resp_len"),
                    "reading": (f"Over {b['step']} RL steps the sampled reward went from "
                                f"{a.get('reward')} to {b.get('reward')} and the mean response "
                                f"length from {a.get('resp_len')} to {b.get('resp_len')} tokens.")})
    return out


def _rl_claim(m: dict) -> dict:
    lab, sft, rl, ctl = (m.get(k) for k in ("arith_labelers", "arith_pass1_sft", "arith_pass1_rl",
                                            "arith_pass1_sft_control"))
    gain = None if rl is None or sft is None else round(rl - sft, 4)
    beats_labelers, beats_control = _above(rl, lab), _above(rl, ctl)
    reading = (f"The SFT labelers got {_pct(lab)} of the test sums right; SFT imitating them "
               f"scores {_pct(sft)} (pass@1, sampled), RL with the exact verifier {_pct(rl)} "
               f"({'n/a' if gain is None else f'{100 * gain:+.1f} points'}), ")
    ratio = m.get("control_compute_ratio")
    given = (f"{ratio:.2f}× RL's compute (token-passes)" if ratio is not None else
             "as many training seconds as RL (compute was not recorded)")
    reading += (f"and the control — SFT given {given} — {_pct(ctl)}. RL is "
                f"{_cmp(rl, ctl)} the control and {_cmp(rl, lab)} its labelers"
                if ctl is not None else "no extra-SFT control was trained for this run")
    if lab is not None and rl is not None and not beats_labelers:
        reading += f" ({100 * (lab - rl):.1f} points short of them)"
    if beats_labelers:
        title = "RL with a verifier beat its labelers"
    elif beats_control:
        title = "RL beat more imitation, but not its labelers"
    else:
        title = "RL did not beat its labelers"
    return {"id": "rl_beyond_labelers", "title": title, "holds": beats_labelers,
            "value": rl, "labelers": lab, "sft": sft, "control": ctl, "gain": gain,
            "reading": reading + "."}


def _passk_claim(m: dict) -> dict:
    g = m.get
    k = g("passk_k")
    d1 = None if g("arith_pass1_rl") is None or g("arith_pass1_sft") is None else \
        g("arith_pass1_rl") - g("arith_pass1_sft")
    dk = None if g("arith_passk_rl") is None or g("arith_passk_sft") is None else \
        g("arith_passk_rl") - g("arith_passk_sft")
    holds = None if d1 is None or dk is None else d1 > dk + 1e-9
    return _claim("pass_at_k", holds, f"RL sharpens pass@1 more than pass@{k}",
                  f"RL did not raise pass@1 more than pass@{k}",
                  f"Test sums, {g('passk_samples')} samples at temperature 1: pass@1 SFT "
                  f"{_pct(g('arith_pass1_sft'))} -> RL {_pct(g('arith_pass1_rl'))}; pass@{k} "
                  f"SFT {_pct(g('arith_passk_sft'))} -> RL {_pct(g('arith_passk_rl'))}. "
                  + ("RL mostly made the model pick, first time, answers it could already reach."
                     if holds else "Here RL did not mainly sharpen what SFT could already do."),
                  value=g("arith_pass1_rl"), passk_rl=g("arith_passk_rl"),
                  passk_sft=g("arith_passk_sft"))


def write_report(run_dir, report: dict, split: str = "test") -> Path:
    """Atomically: a temporary file in the same folder, fsynced, then renamed over."""
    path = RunFolder(run_dir).report(split)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, ensure_ascii=False, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def _points(x: float) -> str:
    return f"{100 * x:+.0f}"


def _interval(row: dict) -> str:
    """"-2 points [-12, +8]" (a pass rate) or "+0.04 gold [-0.05, +0.12]" (the open tasks): a
    transfer row's difference and its interval."""
    if row.get("unit") == GOLD:
        return f"{row['diff']:+.2f} gold [{row['lo']:+.2f}, {row['hi']:+.2f}]"
    return f"{_points(row['diff'])} points [{_points(row['lo'])}, {_points(row['hi'])}]"


def _left_out(row: dict) -> bool:
    """A skill RL could have practised and did not: a verifiable family outside RL's, or the
    open tasks (RLHF practises them; RL never does). The other unpractised families measure
    what the model remembers or which wording it follows, not a skill left out."""
    return not row["trained"] and (row["verifiable"] or row.get("unit") == GOLD)


def transfer_claim(rows: list[dict]) -> dict:
    """Does practice on some verifiable families move the tasks RL never practised (the
    verifiable families left out, and the open tasks in gold)? Read from the paired intervals:
    transfer only where the whole interval is above zero, on rows with at least FEW_PROMPTS
    distinct prompts. The title names the left-out rows."""
    out_of_rl = [r for r in rows if _left_out(r)]
    left = [r for r in out_of_rl if not r.get("few")]
    up = [r for r in left if r["lo"] > 0]
    down = [r for r in left if r["hi"] < 0]  # practice elsewhere cost these: said, not hidden
    holds = bool(up) if left else None
    names = ", ".join(r["family"] for r in (up or left))
    practised = ", ".join(r["family"] for r in rows if r["trained"]) or "no family shown here"
    if not rows:
        reading = "This run has no RL and control models to compare."
    else:
        reading = (f"RL practised {practised}. "
                   "RL minus the control, greedy answers to the same test prompts, with 95% "
                   "paired intervals (every family: the transfer table). "
                   + _above_control(rows, lambda r: r["trained"], "Practised families")
                   + _above_control(rows, lambda r: r.get("partly"),
                                    "Partly practised (half their items are sums)")
                   + _above_control(rows, lambda r: not (r["trained"] or r.get("partly")
                                                         or _left_out(r)),
                                    "Families that are not practice problems")
                   + _open_note(rows))
        if out_of_rl and not left:
            reading += ("The families left out of RL were asked on too few prompts "
                        f"(under {FEW_PROMPTS}) to read: transfer not measured.")
        elif not left:
            reading += "No verifiable family was left out of RL, so none measures transfer."
        elif holds:
            reading += "Left out of RL yet above the control: " + ", ".join(
                f"{r['family']} ({_interval(r)})" for r in up) + "."
        else:
            named = ", ".join(f"{r['family']} ({_interval(r)})" for r in left)
            reading += (f"On {named}, never practised, RL is not above the control beyond "
                        "noise: no transfer measured here.")
        if down:
            reading += (" Left out of RL and below the control beyond noise: " + ", ".join(
                f"{r['family']} ({_interval(r)})" for r in down) + ".")
    fell = f"; {', '.join(r['family'] for r in down)} fell below the control" if down else ""
    yes, no = (f"RL's practice transferred to {names}, never practised{fell}",
               f"No transfer to {names}, which RL never practised{fell}")
    if holds is None:
        yes = no = "RL's practice transferred to families it never practised"
    first = (up or left or [{}])[0]  # the figure is the first row the title names
    unit = GOLD if first.get("unit") == GOLD else POINTS  # a difference of two pass rates
    return _claim("transfer", holds, yes, no, reading, value=first.get("diff"), rows=rows,
                  unit=unit)


def _open_note(rows: list[dict]) -> str:
    """What the open_tasks row is, said once where the table has it."""
    row = next((r for r in rows if r.get("unit") == GOLD), None)
    if row is None:
        return ""
    return (f"{OPEN_FAMILY}: greedy replies to the same {row['n']} unverifiable tasks, scored "
            "by the hidden raters (gold, about -2..1, never a training signal): RL "
            f"{row['rl']:+.2f}, the control {row['control']:+.2f}, paired t interval. ")


def _above_control(rows: list[dict], which, label: str) -> str:
    """"<label> above the control beyond noise: a, b. " over the rows ``which`` picks."""
    mine = [r for r in rows if which(r) and not r.get("few")]
    if not mine:
        return ""
    up = [r["family"] for r in mine if r["lo"] > 0]
    return f"{label} above the control beyond noise: {', '.join(up) or 'none'}. "


def thinking_claim(m: dict, rl_sampled: dict) -> dict:
    """Did RL find a way of answering its SFT data never showed? (Working before answering
    when the data only answered first, or the reverse.) Shares count the replies that state
    an answer; a reply cut off before its answer is counted apart, as stating none."""
    data, start, end = (m.get(k) for k in ("sft_data_share_work_first",
                                           "rl_share_work_first_start",
                                           "rl_share_work_first_end"))
    new_way, example, unseen, compared = None, None, None, True
    if None not in (data, start, end):
        # a way the data never shows, that RL made more common ...
        if data == 0 and end > start:
            unseen, way, other = "working before answering", "work_first", "answer_first"
        elif data == 1 and end < start:
            unseen, way, other = "answering first", "answer_first", "work_first"
        new_way = False
        if unseen:  # ... and that is right at least as often as the way SFT taught
            mine, theirs = (rl_sampled.get(f"pass1_{w}") for w in (way, other))
            compared = mine is not None and theirs is not None and (mine > 0 or theirs > 0)
            new_way = compared and mine >= theirs and mine > 0
            example = rl_sampled.get(f"example_{way}") if new_way else None
    reading = (f"{_pct(data)} of the SFT data's replies to the problems RL practises work "
               f"before answering. Over RL, sampled replies that work first went from "
               f"{_pct(start)} to {_pct(end)} and the mean reply from {m.get('rl_len_start')} "
               f"to {m.get('rl_len_end')} tokens. RL's sampled sums (test) are right "
               f"{_pct(m.get('rl_pass1_work_first'))} of the time when it works first "
               f"(n={rl_sampled.get('n_work_first')}) and "
               f"{_pct(m.get('rl_pass1_answer_first'))} when it answers first "
               f"(n={rl_sampled.get('n_answer_first')}); "
               f"{_pct(m.get('rl_sampled_share_no_answer'))} state no answer. ")
    reading += _thinking_verdict(data, start, end, unseen, new_way, example, compared)
    return _claim("rl_discovers", new_way, "RL found a way of answering its SFT data never showed",
                  "RL found no new way of answering at this scale", reading,
                  value=end, start=start, sft_data=data, example=example)


def _thinking_verdict(data, start, end, unseen, new_way, example, compared=True) -> str:
    """The closing sentence of thinking_claim, true in each case the figures can fall in."""
    if new_way:
        return (f"RL made {unseen} more common, a way its SFT data never shows, and it is "
                "right at least as often: RL found it."
                + (f" Example: {example['prompt']!r} -> {example['answer']!r}." if example
                   else ""))
    if unseen and compared:
        return (f"RL made {unseen} more common, a way its SFT data never shows, but it is "
                "right less often than the way SFT taught: nothing better was discovered at "
                "this scale.")
    if unseen:
        return (f"RL made {unseen} more common, a way its SFT data never shows, but too few "
                "test samples answered each way, or none right, to say it is as good.")
    if new_way is None:
        return "Not measured: this run lacks the SFT data share or RL's curve."
    if 0 < data < 1:
        return ("Both ways are in its SFT data; RL changed how often each is used and "
                "discovered nothing new.")
    shown = "answers first" if data == 0 else "works first"
    return (f"Its SFT data always {shown}, and RL did not move away from it: nothing new took "
            "hold at this scale.")
