"""The report card: what each stage of a run can do, measured by sampling on held-out problems.

``evaluate_run(run)`` loads the run's models (base, sft, rl, and the extra-SFT control in
``sft_control/`` when the trainer made one), asks each the same held-out problems of every task
family (engine/tasks.py), checks the answers with the exact verifier, and writes
``report.json``: pass@1 per family x stage, the lecture's claims as numbers with a reading in
words, a few real answers per cell, and the RL reward / response-length curve from
``events.jsonl``.

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

from engine import tasks as T
from engine import world as W

REPORT_FILE = "report.json"
STAGE_DIRS = {"base": "base", "sft": "sft", "rl": "rl", "control": "sft_control"}
CHAT_FAMILIES = ("arith", "count_letters", "decimal_cmp", "fact", "fact_heldout", "unknown",
                 "identity")
N_EXAMPLES = 3
BATCH = 128  # rows per generate_batch call: large enough to amortise, small enough for RAM
MARGIN = 8  # tokens a budget allows beyond the longest reference answer of its family

Progress = Callable[..., None]  # progress(done, total, label)


# -- problems and budgets ---------------------------------------------------------------------

def _family_of(question: str) -> str:
    """Which family an SFT question belongs to (only to size the token budgets)."""
    if W.expected_arith(question) is not None:
        return "arith"
    if question.startswith("How many times does the letter"):
        return "count_letters"
    if question.startswith("Which is larger"):
        return "decimal_cmp"
    if question in ("Who are you?", "What are you?", "Who made you?"):
        return "identity"
    return "fact"


def token_budgets(tok, world: W.World, block_size: int) -> dict[str, int]:
    """Per family: the longest flawless SFT answer in tokens, plus a margin.

    A budget any shorter would cut off correct work; any longer only wastes decoding time.
    """
    longest: dict[str, int] = {}
    for conv in W.sft_conversations(world, labeler_error_rate=0.0, include_idk=True, n=800):
        fam = _family_of(conv[0]["content"])
        n = len(tok.encode(conv[-1]["content"])) + 1  # + <|assistant_end|>
        longest[fam] = max(longest.get(fam, 0), n)
    out = {fam: min(block_size // 2, longest.get(fam, 32) + MARGIN) for fam in
           ("arith", "count_letters", "decimal_cmp", "fact", "identity")}
    out["fact_heldout"] = out["unknown"] = out["fact"]
    return out


# -- sampling ---------------------------------------------------------------------------------

def _generate(model, prompts: list[list[int]], max_tokens: int, stop_ids: list[int],
              temperature: float, seed: int) -> list[list[int]]:
    from engine.sampler import SampleSettings, generate_batch

    out: list[list[int]] = []
    for i in range(0, len(prompts), BATCH):
        settings = SampleSettings(temperature=temperature, top_k=50, max_tokens=max_tokens,
                                  seed=seed + i)
        out += generate_batch(model, prompts[i: i + BATCH], settings, stop_ids=stop_ids)
    return out


def _chat_answers(model, tok, problems: list[T.Problem], max_tokens: int, temperature: float,
                  seed: int, prefix: str = "") -> list[dict]:
    """Each problem answered in the chat format; ``prefix`` is forced as the answer's start."""
    from engine.chat import render_prompt

    end = tok.special_id("<|assistant_end|>")
    specials = set(tok.specials.values())
    pre = tok.encode(prefix) if prefix else []
    prompts = [render_prompt(tok, p.messages) + pre for p in problems]
    rows = []
    for p, ids in zip(problems, _generate(model, prompts, max_tokens, [end], temperature, seed),
                      strict=True):
        text = prefix + tok.decode([t for t in ids if t not in specials])
        # Chat format: the turn ends with <|assistant_end|> and holds no other special token.
        formatted = bool(ids) and ids[-1] == end and not any(t in specials for t in ids[:-1])
        rows.append({"prompt": p.messages[-1]["content"], "answer": text.strip(),
                     "expected": p.answer, "correct": bool(T.verify(p, text)),
                     "format": formatted})
    return rows


def _completions(model, tok, pairs: list[tuple[str, str]], seed: int) -> list[dict]:
    """A base model continues held-out fact sentences; right if the answer comes next."""
    from engine.chat import render_document

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
                budgets: dict[str, int], temperature: float, seed: int,
                tick: Callable[[str], None]) -> dict[str, list[dict]]:
    """Rows (prompt, answer, expected, correct, format) per family for one stage's model."""
    rows: dict[str, list[dict]] = {}
    for fam in CHAT_FAMILIES:
        rows[fam] = _chat_answers(model, tok, problems[fam], budgets[fam], temperature, seed)
        tick(f"{stage}: {fam}")
    if stage == "base":
        pairs = T.fact_completions(world, "heldout", len(problems["fact_heldout"]), seed)
        rows["complete_heldout"] = _completions(model, tok, pairs, seed)
    else:
        # Tokens to think: the same arithmetic, but the answer must come first.
        rows["answer_first"] = _chat_answers(model, tok, problems["arith"], 12, temperature,
                                             seed, prefix="Answer:")
    tick(f"{stage}: extra")
    return rows


def _share(rows: list[dict], key: str = "correct") -> float | None:
    return round(sum(bool(r[key]) for r in rows) / len(rows), 4) if rows else None


# -- the report -------------------------------------------------------------------------------

def evaluate_run(run_dir, device: str = "cpu", n_per_family: int = 100,
                 progress: Progress | None = None, seed: int = 0,
                 temperature: float = 0.0) -> dict:
    """Evaluate every stage the run has, write ``<run>/report.json`` atomically, return it."""
    import torch

    from engine.checkpoint import load_run_model
    from engine.runs import read_json, resolve_run

    run_dir = resolve_run(run_dir)
    t0 = time.perf_counter()
    info = read_json(run_dir / "run.json") if (run_dir / "run.json").is_file() else {}
    preset = info.get("preset_config") or {}
    world_seed = int((info.get("data") or {}).get("world_seed", info.get("seed", 0)))
    world = W.build_world(world_seed)
    stages = [s for s, d in STAGE_DIRS.items() if (run_dir / d / "model.safetensors").is_file()]
    problems = {fam: T.eval_problems(world, fam, n_per_family, seed) for fam in CHAT_FAMILIES}

    total, done = len(stages) * (len(CHAT_FAMILIES) + 1) or 1, 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, label)

    results: dict[str, dict[str, list[dict]]] = {}
    budgets: dict[str, int] = {}
    torch.manual_seed(seed)
    for stage in stages:
        model, tok, _ = load_run_model(run_dir, STAGE_DIRS[stage], device=device)
        model.eval()
        if not budgets:
            budgets = token_budgets(tok, world, model.config.block_size)
        results[stage] = _eval_stage(stage, model, tok, world, problems, budgets, temperature,
                                     seed, tick)
        del model
    labelers = W.labeler_accuracy(world, float(preset.get("labeler_error_rate", 0.3)),
                                  bool(preset.get("include_idk", True)))
    report = build_report(run_dir.name, seed, results, labelers, n_per_family,
                          rl_curve(run_dir), temperature)
    report["eval_s"] = round(time.perf_counter() - t0, 2)
    report["budgets"] = budgets
    write_report(run_dir, report)
    return report


def build_report(run: str, seed: int, results: dict[str, dict[str, list[dict]]],
                 labelers: float, n: int, curve: list[dict], temperature: float = 0.0) -> dict:
    """The report.json object from the rows each stage produced (pure: no models, no files)."""
    fams: dict[str, dict] = {}
    for fam in CHAT_FAMILIES:
        row: dict = {s: _share(r[fam]) for s, r in results.items()}
        if fam == "arith":
            row["labelers"] = round(labelers, 4)
        row["n"] = n
        fams[fam] = row
    m: dict = {f"n_eval_{fam}": n for fam in CHAT_FAMILIES}

    def get(stage: str, fam: str, key: str = "correct"):
        rows = results.get(stage, {}).get(fam)
        return _share(rows, key) if rows is not None else None

    for stage in STAGE_DIRS:
        tag = "sft_control" if stage == "control" else stage
        chat_rows = [r for f in CHAT_FAMILIES for r in results.get(stage, {}).get(f, [])]
        m[f"format_{tag}"] = _share(chat_rows, "format")
        m[f"arith_pass1_{tag}"] = get(stage, "arith")
        for fam in ("count_letters", "decimal_cmp", "fact", "identity"):
            m[f"{fam}_{tag}"] = get(stage, fam)
        m[f"knowledge_heldout_{tag}"] = get(stage, "fact_heldout")
        m[f"refusal_unknown_{tag}"] = get(stage, "unknown")
        m[f"answer_first_{tag}"] = get(stage, "answer_first")
        m[f"work_first_{tag}"] = get(stage, "arith") if stage != "base" else None
        if stage in results:
            facts = results[stage]["fact"] + results[stage]["fact_heldout"]
            refusals = [{"correct": "don't know" in r["answer"].lower()} for r in facts]
            m[f"refusal_known_{tag}"] = _share(refusals)
    m["knowledge_complete_base"] = get("base", "complete_heldout")
    m["arith_labelers"] = round(labelers, 4)
    m = {k: v for k, v in m.items() if v is not None or k in REQUIRED}
    examples = {fam: {s: r[fam][:N_EXAMPLES] for s, r in results.items() if fam in r}
                for fam in (*CHAT_FAMILIES, "answer_first", "complete_heldout")}
    examples = {f: v for f, v in examples.items() if v}
    return {"run": run, "seed": seed, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "decoding": {"temperature": temperature, "top_k": 50 if temperature > 0 else None},
            "metrics": m, "families": fams, "claims": claims(m, curve), "examples": examples,
            "rl_curve": curve}


REQUIRED = ("format_base", "format_sft", "knowledge_heldout_sft", "refusal_unknown_sft",
            "arith_pass1_sft", "arith_pass1_rl", "answer_first_sft", "work_first_sft",
            "count_letters_sft", "count_letters_rl", "decimal_cmp_sft", "decimal_cmp_rl",
            "arith_labelers", "arith_pass1_sft_control")


def rl_curve(run_dir: Path) -> list[dict]:
    """(step, reward, resp_len) of the RL stage's ``step`` events; a resumed step's last wins."""
    from engine.events import EVENTS_FILE, read_events

    points: dict[int, dict] = {}
    for e in read_events(Path(run_dir) / EVENTS_FILE):
        if e.get("type") == "step" and e.get("stage") == "rl" and "reward" in e:
            points[int(e.get("step", 0))] = {"step": int(e.get("step", 0)),
                                             "reward": e.get("reward"),
                                             "resp_len": e.get("resp_len")}
    return [points[s] for s in sorted(points)]


# -- claims: the lecture's statements, read from the numbers ----------------------------------

def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _cmp(a, b, more: str = "higher than", less: str = "lower than", same: str = "equal to"):
    if a is None or b is None:
        return "not comparable to"
    return more if a > b + 1e-9 else less if a < b - 1e-9 else same


def claims(m: dict, curve: list[dict]) -> list[dict]:
    g = m.get
    think = _cmp(g("work_first_sft"), g("answer_first_sft"), "better", "worse", "no different")
    out = [
        {"id": "knowledge", "title": "Knowledge comes from pretraining",
         "value": g("knowledge_heldout_sft"), "base_completes": g("knowledge_complete_base"),
         "reading": (f"Asked about entities that appear in no SFT conversation, SFT answers "
                     f"{_pct(g('knowledge_heldout_sft'))} correctly (known entities: "
                     f"{_pct(g('fact_sft'))}); the base model completes "
                     f"{_pct(g('knowledge_complete_base'))} of the same held-out fact sentences. "
                     "What SFT knows about them it can only have read in pretraining.")},
        {"id": "format", "title": "SFT teaches the chat format",
         "value": g("format_sft"), "base": g("format_base"),
         "reading": (f"{_pct(g('format_sft'))} of SFT answers end with <|assistant_end|> and "
                     f"hold no stray special token; the base model, which never saw a chat, "
                     f"does so {_pct(g('format_base'))} of the time.")},
        {"id": "hallucination", "title": "Unknown people: refuse or invent",
         "value": g("refusal_unknown_sft"), "rl": g("refusal_unknown_rl"),
         "false_refusal": g("refusal_known_sft"),
         "reading": (f"About people who exist nowhere, SFT says \"I don't know\" "
                     f"{_pct(g('refusal_unknown_sft'))} of the time and invents an answer "
                     f"otherwise; it also refuses {_pct(g('refusal_known_sft'))} of questions "
                     "about entities it does know.")},
        {"id": "tokens_to_think", "title": "Models need tokens to think",
         "value": g("work_first_sft"), "answer_first": g("answer_first_sft"),
         "reading": (f"On held-out arithmetic SFT is right {_pct(g('work_first_sft'))} of the "
                     f"time when it works column by column first, and "
                     f"{_pct(g('answer_first_sft'))} when forced to start with \"Answer:\" — "
                     f"working first is {think}.")},
        _rl_claim(m),
    ]
    for fam in ("count_letters", "decimal_cmp"):
        out.append({"id": fam, "title": f"{fam}: pass@1 per stage", "value": g(f"{fam}_rl"),
                    "base": g(f"{fam}_base"), "sft": g(f"{fam}_sft"),
                    "reading": (f"{fam}: base {_pct(g(f'{fam}_base'))}, SFT "
                                f"{_pct(g(f'{fam}_sft'))}, RL {_pct(g(f'{fam}_rl'))}.")})
    if len(curve) >= 2:
        a, b = curve[0], curve[-1]
        out.append({"id": "rl_dynamics", "title": "RL dynamics", "value": b.get("reward"),
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
    reading = (f"The SFT labelers got {_pct(lab)} of their arithmetic right; SFT imitating them "
               f"scores {_pct(sft)} on held-out sums, RL with the exact verifier {_pct(rl)} "
               f"({'n/a' if gain is None else f'{100 * gain:+.0f} points'}), ")
    reading += (f"and the control — SFT trained as long again — {_pct(ctl)}. RL is "
                f"{_cmp(rl, ctl)} the control and {_cmp(rl, lab)} its labelers."
                if ctl is not None else "no extra-SFT control was trained for this run.")
    return {"id": "rl_beyond_labelers", "title": "RL with a verifier can beat its labelers",
            "value": rl, "labelers": lab, "sft": sft, "control": ctl, "gain": gain,
            "reading": reading}


def write_report(run_dir, report: dict) -> Path:
    """Atomically: a temporary file in the same folder, fsynced, then renamed over."""
    path = Path(run_dir) / REPORT_FILE
    tmp = path.with_name(f".{REPORT_FILE}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, ensure_ascii=False, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path
