"""What a Compare session looks like outside the app: a JSON record and the same as Markdown.

``session_record`` reads the pane's state (prompt, settings, each column's text, mark, reason
and seed, the ×N samples or the family tally); ``session_markdown`` writes it for a handout.
Also here: ``divergence``, the token where each column leaves the others.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from engine.api import tally_line


def common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


MIN_SHARED = 3  # tokens two columns must share before their parting is worth a highlight


def divergence(pieces: dict[int, list[str]]) -> dict[int, tuple[int | None, int | None]]:
    """Per column: (the token index where it leaves the column it agrees with longest, or None
    when it shares fewer than MIN_SHARED first tokens with every other or ends before leaving;
    the column it equals, if any)."""
    out: dict[int, tuple[int | None, int | None]] = {}
    for i, mine in pieces.items():
        best, same = 0, None
        for j, theirs in pieces.items():
            if j == i:
                continue
            if mine == theirs and same is None:
                same = j
            best = max(best, common_prefix(mine, theirs))
        at = best if same is None and MIN_SHARED <= best < len(mine) else None
        out[i] = (at, same)
    return out


def _verdict(v) -> dict[str, Any]:
    if v is None:
        return {"mark": "", "correct": None, "reason": ""}
    return {"mark": v.mark, "correct": v.correct, "reason": v.reason}


def session_record(pane) -> dict[str, Any]:
    """Everything the pane shows of its last run, as plain data."""
    problem = pane.problem
    columns = []
    for c in pane.columns:
        col: dict[str, Any] = {"model": c.key, "seed": c.seed, "text": c.text,
                               **_verdict(c.verdict)}
        if c.same_as:
            col["same_text_as"] = c.same_as
        if c.diverges_at is not None:
            col["diverges_at_token"] = c.diverges_at
        if c.samples:
            col["samples"] = [{"text": s, **_verdict(v)}
                              for s, v in zip(c.samples, c.sample_verdicts, strict=True)]
        if c.family:
            col["family"] = [{"prompt": p.prompt, "expected": p.answer, "answer": a,
                              **_verdict(v)} for p, a, v in c.family]
        if c.pass_rate:
            col["passed"], col["total"] = c.pass_rate
        columns.append(col)
    return {
        "run": pane.run_name,
        "mode": pane.mode,
        "family": pane.family_name,
        "prompt": user_text_of(problem),
        "problem": None if problem is None else {
            "family": problem.family, "kind": problem.kind, "answer": problem.answer},
        "settings": asdict(pane.settings),
        "fewshot_base": pane.fewshot,
        "columns": columns,
    }


def user_text_of(problem) -> str:
    if problem is None:
        return ""
    return next((m["content"] for m in reversed(problem.messages) if m["role"] == "user"), "")


def session_json(record: dict) -> str:
    return json.dumps(record, indent=1, ensure_ascii=False) + "\n"


def _quote(text: str) -> str:
    return "\n".join("> " + line for line in (text or "(nothing)").splitlines()) or "> "


def session_markdown(record: dict) -> str:
    s = record["settings"]
    lines = [f"# Compare — {record['run']}", ""]
    if record["mode"] == "family":
        lines += [f"Family mode: **{record['family']}**, {s['family_k']} test-split problems, "
                  "greedy decoding with the report card's token budget.", ""]
    else:
        lines += [f"**Prompt:** {record['prompt']}", ""]
        if record["problem"] and record["problem"]["answer"]:
            lines += [f"Checkable ({record['problem']['family']}); expected: "
                      f"{record['problem']['answer']}", ""]
        else:
            lines += ["Not checkable (the engine does not recognise this wording).", ""]
    lines += [f"Settings: temperature {s['temperature']}, top-k {s['top_k']}, max "
              f"{s['max_tokens']} tokens, base seed {s['seed']}, ×N {s['n_samples']}; base "
              f"column: {'few-shot document' if record['fewshot_base'] else 'raw chat prompt'}.",
              ""]
    for col in record["columns"]:
        seed = "greedy" if record["mode"] == "family" else f"seed {col['seed']}"
        lines += [f"## {col['model']} ({seed})", ""]
        if "family" in col:
            lines += ["| | question | answer | reason |", "|---|---|---|---|"]
            for row in col["family"]:
                answer = " ".join(row["answer"].split()).replace("|", "\\|")
                lines.append(f"| {row['mark']} | {row['prompt']} | {answer} | {row['reason']} |")
        elif "samples" in col:
            for row in col["samples"]:
                lines.append(f"- {row['mark']} {' '.join(row['text'].split())}"
                             + (f" — {row['reason']}" if row["correct"] is False else ""))
        else:
            lines += [_quote(col["text"]), "", f"{col['mark']} {col['reason']}".strip()]
            if col.get("same_text_as"):
                lines.append(f"(same text as {col['same_text_as']})")
        if "passed" in col:
            lines += ["", f"right: {tally_line(col['passed'], col['total'])}"]
        lines.append("")
    return "\n".join(lines)
