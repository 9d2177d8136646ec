"""Sample pane figures, headless: does the display keep up, and does the UI stay responsive?

- display_tokens_per_s: tokens shown by the pane over the time from its first to its last
  batch, while a fake engine (a real ModelClient's interface, no model) produces --fake-rate
  tokens/s. Goal >= 1,000: the pane is never the bottleneck.
- p95_lag_ms / max_lag_ms: while it samples, a callback scheduled every 10 ms on the app's
  event loop records how late it fires. Goal p95 < 50 ms.
- model_tokens_per_s, model_display_tokens_per_s, model_p95_lag_ms: the same with a real model
  (--run NAME, or a random-weight tiny GPT the bench builds: speed does not depend on training).

Usage: python bench/sample_ui.py [--tokens 5000] [--fake-rate 5000] [--run NAME]
                                [--model-tokens 400] [--device cpu|cuda|auto]
Both measurements start with torch already imported (the one-time import is not sampling).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = ("the", " cat", " sat", " on", " a", " mat", ".", "\n", " Ωmega", " 42", " and")


class FakeTokenizer:
    """Byte-level, with one special: enough for prepare_prompt and the pane."""

    specials = {"<|bos|>": 256}
    n_vocab = 257

    def encode(self, text: str) -> list[int]:
        return list(text.encode())

    def decode(self, ids) -> str:
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def token_bytes(self, i: int) -> bytes:
        return b"<|bos|>" if i == 256 else bytes([i])

    def special_id(self, name: str) -> int:
        return self.specials[name]


class FakeClient:
    """A ModelClient that streams made-up TokenEvents at `rate` tokens/s (paced, so the
    producer thread sleeps like a model waiting on its kernels instead of spinning)."""

    def __init__(self, rate: float):
        self.rate = rate
        self.tok = FakeTokenizer()

    def load(self, run, stage):
        return {"config": {"block_size": 1 << 20}, "step": 0}

    def tokenizer(self, run):
        return self.tok

    def stream(self, run, stage, prompt_ids, settings, stop_ids=(), cancel=None):
        from engine.model.sampler import TokenEvent

        t0 = time.perf_counter()
        weights = [1 / (i + 1) for i in range(len(WORDS))]
        top = [(i, w, weights[i] / sum(weights)) for i, w in enumerate(WORDS)]
        top = top[: settings.n_alternatives]
        for index in range(settings.max_tokens):
            if cancel is not None and cancel.is_set():
                return
            ahead = (index + 1) / self.rate - (time.perf_counter() - t0)
            if ahead > 0.002:
                time.sleep(ahead)
            k = index % len(WORDS)
            yield TokenEvent(index, k, WORDS[k], top[k % len(top)][2], top)


def make_runs_folder(root: Path, name: str) -> None:
    """A run folder list_runs() shows (the fake client never reads the files)."""
    from engine.run import MODEL_FILE, RunFolder

    run = RunFolder(root / name)
    run.model_dir("base").mkdir(parents=True)
    (run.model_dir("base") / MODEL_FILE).write_bytes(b"")
    run.tokenizer.write_text("{}")


def build_random_run(root: Path, name: str = "random-tiny") -> None:
    """A real run: a BPE tokenizer trained on a little text and a random-weight tiny GPT."""
    import torch

    from engine.model.checkpoint import save_checkpoint
    from engine.model.gpt import GPT, GPTConfig
    from engine.run import RunFolder
    from engine.tokens.chat import SPECIAL_TOKENS
    from engine.tokens.tokenizer import train_bpe

    text = " ".join(f"the {w} number {i} sat on the mat." for i, w in
                    enumerate(["cat", "dog", "owl", "fox"] * 60))
    tok = train_bpe([text], vocab_size=512)  # carries engine.tokens.chat.SPECIAL_TOKENS (CONTRACTS)
    run = RunFolder(root / name)
    run.path.mkdir(parents=True)
    tok.save(run.tokenizer)
    model = GPT(GPTConfig(vocab_size=tok.n_vocab, block_size=512, n_layer=4, n_head=4, n_embd=128))
    with torch.no_grad():  # stop tokens' logits exactly 0: a random model runs to max tokens
        model.transformer.wte.weight[[tok.special_id(s) for s in SPECIAL_TOKENS]] = 0.0
    save_checkpoint(run.model_dir("base"), model, {"stage": "base", "step": 0})


async def measure(client, run: str, stage: str, tokens: int, size=(100, 30)) -> dict:
    """Run the pane in a headless app, generate `tokens` tokens, time display and loop lag."""
    from textual.app import App

    from tui.panes.sample import SamplePane
    from tui.panes.sample_view import TokenView

    class BenchApp(App):
        def compose(self):
            yield SamplePane(id="sample-pane", client=client)

    app = BenchApp()
    lags: list[float] = []
    stop = threading.Event()
    async with app.run_test(size=size) as pilot:
        pane = app.query_one(SamplePane)
        pane.query_one("#sample-model").value = (run, stage)
        pane.query_one("#sample-max").value = str(tokens)
        pane.query_one("#sample-topk").value = "50"
        await pilot.pause(0.1)
        loop = asyncio.get_running_loop()

        def tick(due: float) -> None:
            now = time.perf_counter()
            lags.append(max(0.0, now - due))
            if os.environ.get("LAGDEBUG") and now - due > 0.05:
                print(f"lag {1000 * (now - due):.0f} ms at +{now - t0:.2f}s, "
                      f"tokens {len(pane.events)}", file=sys.stderr)
            if not stop.is_set():
                loop.call_later(0.01, tick, now + 0.01)

        t0 = time.perf_counter()
        loop.call_later(0.01, tick, time.perf_counter() + 0.01)
        pane.action_generate()
        view = pane.query_one(TokenView)
        while pane.running:
            await asyncio.sleep(0.01)
        t_end = time.perf_counter()
        stop.set()
        shown = view.n_tokens
        first = pane._t_first or t0
        status = pane.status_text
    display_s = t_end - first
    return {"tokens": shown, "display_tokens_per_s": shown / display_s if display_s > 0 else 0,
            "wall_s": t_end - t0, "p95_lag_ms": 1000 * _p95(lags),
            "max_lag_ms": 1000 * max(lags, default=0.0), "status": status}


def _p95(xs: list[float]) -> float:
    if len(xs) < 2:
        return xs[0] if xs else 0.0
    return statistics.quantiles(xs, n=20)[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=5000)
    ap.add_argument("--fake-rate", type=float, default=5000.0)
    ap.add_argument("--run", default=None, help="a trained run; default: a random tiny GPT")
    ap.add_argument("--stage", default="base")
    ap.add_argument("--model-tokens", type=int, default=400)
    ap.add_argument("--device", default="cpu", help="where the real model runs (cpu, cuda, auto)")
    args = ap.parse_args()

    import engine.model.sampler  # noqa: F401  (torch: imported once, before any timing)

    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        fake_root = Path(tmp) / "fake"
        make_runs_folder(fake_root, "fake")
        os.environ["DEEPDIVE_CHECKPOINTS"] = str(fake_root)
        fake = asyncio.run(measure(FakeClient(args.fake_rate), "fake", "base", args.tokens))
        print("fake engine:", json.dumps(fake), file=sys.stderr)
        result.update(fake_rate=args.fake_rate, tokens=fake["tokens"],
                      display_tokens_per_s=round(fake["display_tokens_per_s"]),
                      p95_lag_ms=round(fake["p95_lag_ms"], 2),
                      max_lag_ms=round(fake["max_lag_ms"], 2))
        try:
            result.update(model_figures(args, Path(tmp) / "real"))
        except ImportError as e:  # the engine's tokenizer/model not installed yet
            result["model_error"] = str(e)
    print(json.dumps(result))


def model_figures(args, root: Path) -> dict:
    from engine.api import ModelClient

    if args.run is None:
        build_random_run(root)
        os.environ["DEEPDIVE_CHECKPOINTS"] = str(root)
        run = "random-tiny"
    else:
        os.environ.pop("DEEPDIVE_CHECKPOINTS", None)
        run = args.run
    client = ModelClient(device=None if args.device == "auto" else args.device)
    meta = client.load(run, args.stage)  # load outside the timing: a pane loads once
    # The pane lists the runs beside the measured one.
    os.environ["DEEPDIVE_CHECKPOINTS"] = str(Path(client._run_dir(run)).parent)
    alone = engine_rate(client, run, args.stage, args.model_tokens)
    real = asyncio.run(measure(client, run, args.stage, args.model_tokens))
    print("real model:", json.dumps(real), file=sys.stderr)
    return {"model": f"{run}/{args.stage} ({meta.get('n_params', '?')} params, {args.device})",
            "model_tokens": real["tokens"],
            "model_tokens_per_s": round(alone, 1),
            "model_in_pane_tokens_per_s": round(real["tokens"] / real["wall_s"], 1),
            "model_display_tokens_per_s": round(real["display_tokens_per_s"], 1),
            "model_p95_lag_ms": round(real["p95_lag_ms"], 2),
            "model_max_lag_ms": round(real["max_lag_ms"], 2)}


def engine_rate(client, run: str, stage: str, tokens: int) -> float:
    """Tokens/s of the sampler alone (a worker thread, no UI), with the pane's settings."""
    from engine.tokens.chat import render_document
    from tui.panes.sample_run import Knobs

    prompt = render_document(client.tokenizer(run), "")
    settings = Knobs(max_tokens=tokens).sample_settings()
    out: list[float] = []

    def work() -> None:
        t0 = time.perf_counter()
        n = sum(1 for _ in client.stream(run, stage, prompt, settings, []))
        out.append(n / (time.perf_counter() - t0))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return out[0]


if __name__ == "__main__":
    main()
