"""``deepdive sample``, ``deepdive runs`` and ``deepdive import gpt2``.

Engine (and so torch) imports happen inside the commands: ``deepdive --help`` and
``deepdive runs`` stay fast.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from deepdive.commands.params import path_like

SEED_MAX = 2**63 - 1


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def sample(
    prompt: str = typer.Argument(..., help="Text to continue (or, with --chat, the user's turn)."),
    run: str = typer.Option(..., "--run", help="Run name (under checkpoints/) or path.",
                            callback=path_like),
    stage: str = typer.Option("base", "--stage", help="base | sft | rl | sft_control | ... "
                              "(any stage the run has)"),
    chat: bool = typer.Option(False, "--chat", help="Wrap the prompt as a user turn; stop at "
                              "the end of the assistant's reply."),
    temperature: float = typer.Option(0.8, "--temperature", "-t", help="0 = greedy."),
    top_k: int = typer.Option(50, "--top-k", help="Keep the k likeliest tokens (0 = all)."),
    top_p: float = typer.Option(1.0, "--top-p",
                                help="Keep the smallest set with mass p (1 = all)."),
    max_tokens: int = typer.Option(128, "--max-tokens", "-n", help="Tokens to sample at most."),
    seed: int | None = typer.Option(None, "--seed", help="Same seed, same text."),
    as_json: bool = typer.Option(False, "--json",
                                 help="One JSON object per token, then a summary."),
    device: str | None = typer.Option(None, "--device", help="cpu | cuda | mps (default: best)."),
) -> None:
    """Sample from a run's model, streaming token by token (Ctrl+C stops it)."""
    problem = settings_problem(temperature, top_k, top_p, max_tokens, seed)
    if problem:
        raise fail(problem)
    check_stage(run, stage)
    from engine.api import (
        CheckpointError,
        SampleSettings,
        fit_prompt,
        load_run_model,
        pick_device,
        prepare_prompt,
        stream,
    )

    try:
        model, tok, _ = load_run_model(run, stage, pick_device(device))
        prompt_ids, stop_ids = prepare_prompt(tok, prompt, chat)
    except (CheckpointError, ValueError) as e:
        raise fail(str(e)) from None
    settings = SampleSettings(temperature=temperature, top_k=top_k or None,
                              top_p=top_p if top_p < 1 else None, max_tokens=max_tokens, seed=seed)
    kept, dropped = fit_prompt(prompt_ids, model.config.block_size, max_tokens)
    if dropped:
        typer.secho(f"notice: the prompt is {len(prompt_ids)} tokens and the context "
                    f"{model.config.block_size}; its first {dropped} tokens were dropped.",
                    err=True, fg="yellow")
    t0, events, interrupted = time.perf_counter(), [], False
    try:
        for e in stream(model, tok, kept, settings, stop_ids):
            events.append(e)
            if as_json:
                top = [{"id": i, "text": t, "prob": round(p, 6)} for i, t, p in e.top]
                print(json.dumps({"index": e.index, "id": e.id, "text": e.text,
                                  "prob": round(e.prob, 6), "top": top}, ensure_ascii=False))
            else:
                sys.stdout.write(e.text)
                sys.stdout.flush()
    except KeyboardInterrupt:  # Ctrl+C: end the line and say what came out, not a traceback
        interrupted = True
    seconds = time.perf_counter() - t0
    reason = "interrupted" if interrupted else stop_reason(events, stop_ids, max_tokens)
    summary = {"summary": True, "run": run, "stage": stage, "prompt_tokens": len(kept),
               "dropped": dropped, "tokens": len(events), "stop": reason,
               "tok_s": round(len(events) / seconds, 1) if seconds > 0 else None,
               "text": "".join(e.text for e in events)}
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print()
        typer.secho(f"[{len(events)} tokens, {summary['tok_s']} tok/s, stopped: {reason}]",
                    err=True, dim=True)
    if interrupted:
        raise typer.Exit(130)  # what a shell expects of a program stopped by Ctrl+C


def settings_problem(temperature: float, top_k: int, top_p: float, max_tokens: int,
                     seed: int | None) -> str | None:
    """What is wrong with the sampling settings, naming the option (None: nothing)."""
    if not math.isfinite(temperature) or temperature < 0:
        return f"--temperature must be a number >= 0 (0 = greedy), not {temperature}"
    if top_k < 0:
        return f"--top-k must be >= 0 (0 = keep all tokens), not {top_k}"
    if not (math.isfinite(top_p) and 0 < top_p <= 1):
        return f"--top-p must be above 0 and at most 1 (1 = keep all), not {top_p}"
    if max_tokens < 1:
        return f"--max-tokens must be at least 1, not {max_tokens}"
    if seed is not None and not 0 <= seed <= SEED_MAX:
        return f"--seed must be a whole number from 0 to {SEED_MAX}, not {seed}"
    return None


def run_stages(run_dir: Path) -> list[str]:
    """The stages of a run that have a model: pipeline order first, then the others by name."""
    from engine.api import MODEL_FILE, MODEL_FOLDERS

    if not run_dir.is_dir():
        return []
    found = set()
    for d in run_dir.iterdir():
        if (d / MODEL_FILE).is_file():
            # a save interrupted mid-swap leaves the stage as .<stage>.old-<n> (still loadable)
            old = re.fullmatch(r"\.(.+)\.old-.*", d.name)
            found.add(old.group(1) if old else d.name)
    return [s for s in MODEL_FOLDERS if s in found] + sorted(found - set(MODEL_FOLDERS))


def check_stage(run: str, stage: str) -> None:
    """Exit 2 with a message (naming --stage where the stage is wrong) unless the run exists and
    has that stage."""
    from engine.api import MODEL_FOLDERS, list_runs, resolve_run

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", stage):
        raise fail(f"--stage must be a stage name such as {', '.join(MODEL_FOLDERS)}, "
                   f"not {stage!r}")
    run_dir = resolve_run(run)
    if not run_dir.is_dir():
        known = ", ".join(r.name for r in list_runs()) or "none"
        raise fail(f"run {run!r} ({run_dir}): no such run. Runs here: {known}")
    have = run_stages(run_dir)
    if stage not in have:
        raise fail(f"run {run!r} has no {stage!r} model; --stage must be one of its stages: "
                   f"{', '.join(have) or 'none (train it first)'}")


def stop_reason(events, stop_ids, max_tokens: int) -> str:
    if events and events[-1].id in set(stop_ids):
        return "stop token"
    if len(events) >= max_tokens:
        return "max tokens"
    return "end of context"


def run_progress(run_dir: Path) -> dict | None:
    """Where a run's training stands, folded from its events.jsonl by the reducer the Train pane
    and ``deepdive train`` use: status, stage, step, total, ETA (None: no events)."""
    from engine.api import EVENTS_FILE, RunWatch, run_status, shown_stage

    if not (run_dir / EVENTS_FILE).is_file():
        return None
    watch = RunWatch(run_dir)
    watch.refresh()
    state = watch.state
    st = shown_stage(state)
    eta = st.eta_s() if st else None
    return {"status": run_status(state), "stage": st.name if st else None,
            "step": st.step if st else None, "total": st.total if st else None,
            "eta_s": round(eta, 1) if eta is not None else None}


def runs(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List runs: their stages with step, loss and size; a run training says where it is."""
    from engine.api import (
        RunFolder,
        checkpoints_root,
        eta_text,
        fmt_duration,
        fmt_num,
        list_runs,
    )

    rows = []
    for info in list_runs():
        stages = {s: _stage_row(RunFolder(info.path).model_dir(s)) for s in info.stages}
        # only a run training now is folded: a finished run's events can be long
        progress = run_progress(info.path) if info.active else None
        rows.append({"run": info.name, "path": str(info.path), "active": info.active,
                     "tokenizer": info.has_tokenizer, "stages": stages, "progress": progress})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo(f"No runs under {checkpoints_root()}. Train one: deepdive train --preset tiny")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("run", "stage", "step", "loss", "params", "size", box=None)
    for r in rows:
        name, p = r["run"], r["progress"]
        if p and p["stage"]:
            eta = eta_text(None) if p["eta_s"] is None else f"ETA {fmt_duration(p['eta_s'])}"
            name += f" (training {p['stage']} {fmt_num(p['step'])}/{fmt_num(p['total'])}, {eta})"
        elif r["active"]:
            name += " (training)"
        if not r["stages"]:
            table.add_row(name, "-", "", "", "", "")
        for s, d in r["stages"].items():
            loss = f"{d['loss']:.3f}" if isinstance(d["loss"], (int, float)) else "-"
            params = f"{d['params'] / 1e6:.2f}M" if d["params"] else "-"
            step = "damaged" if d["damaged"] else str(d["step"] if d["step"] is not None else "-")
            table.add_row(name, s, step, loss, params,
                          "-" if d["bytes"] is None else human_bytes(d["bytes"]))
            name = ""
    Console().print(table)


def _stage_row(folder) -> dict:
    """What `deepdive runs` shows of one stage folder; a damaged meta.json or a missing model
    file marks the row damaged instead of stopping the listing."""
    from engine.api import META_FILE, MODEL_FILE, read_json

    def num(v):
        return v if isinstance(v, int | float) and not isinstance(v, bool) else None

    try:
        meta = read_json(folder / META_FILE)
    except (OSError, ValueError):
        meta = None
    metrics = (meta or {}).get("metrics")
    metrics = metrics if isinstance(metrics, dict) else {}
    try:
        size = (folder / MODEL_FILE).stat().st_size
    except OSError:
        size = None
    step = num((meta or {}).get("step"))
    return {"step": step, "loss": num(metrics.get("val_loss", metrics.get("loss"))),
            "params": num((meta or {}).get("n_params")), "bytes": size,
            "damaged": step is None or size is None}  # every saved meta.json has its step


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


import_app = typer.Typer(help="Bring outside weights in as a deepdive run.", no_args_is_help=True)


@import_app.command("gpt2")
def import_gpt2(
    from_dir: Annotated[Path | None, typer.Option(
        "--from", help="A local Hugging Face GPT-2 folder "
        "(config.json, model.safetensors, vocab.json, merges.txt).",
        callback=path_like)] = None,
    download: Annotated[str | None, typer.Option(
        "--download", help="Fetch from Hugging Face first: gpt2, gpt2-medium, gpt2-large, gpt2-xl."
    )] = None,
    run: Annotated[str | None, typer.Option(
        "--run", help="Run name (default: the model's name).", callback=path_like)] = None,
) -> None:
    """Convert GPT-2 weights into a deepdive run (arch gpt2, stage base)."""
    if (from_dir is None) == (download is None):
        raise fail("give exactly one of --from DIR or --download NAME")
    from engine.api import DownloadError, GPT2ImportError, download_gpt2, resolve_run
    from engine.api import import_gpt2 as do_import

    source = str(from_dir) if from_dir else download
    name = run or Path(source.rstrip("/")).name
    try:
        if download:
            folder = download_gpt2(download, progress=ProgressLine())
            sys.stderr.write("\n")
        else:
            folder = from_dir
        run_dir = do_import(folder, resolve_run(name), source=source)
    except (GPT2ImportError, DownloadError, OSError) as e:
        raise fail(str(e)) from None
    typer.echo(f"imported {source} -> {run_dir}  (try: deepdive sample --run {name} \"Hello\")")


class ProgressLine:
    """A one-line download progress on stderr, redrawn at most ~10 times a second."""

    def __init__(self):
        self.last = 0.0

    def __call__(self, file: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and done != total:
            return
        self.last = now
        of = f" / {human_bytes(total)}" if total else ""
        sys.stderr.write(f"\r{file}: {human_bytes(done)}{of}   ")
        sys.stderr.flush()


def register(app: typer.Typer) -> None:
    app.command()(sample)
    app.command()(runs)
    app.add_typer(import_app, name="import")
