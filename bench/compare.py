"""Compare pane figures on a trained run (default: the demo's tiny run).

- three_vs_one_ratio: wall time of three columns (base, sft, rl) streaming together through
  ModelClient.stream_many (one batched forward per step over the stacked models), over the time
  of one column (sft) alone; every column makes exactly --tokens tokens (stop tokens off) so the
  work is equal. Goal <= 1.5. threads_ratio: the same with one thread per column calling
  ModelClient.stream (what stream_many did before batching).
- p95_lag_ms: the app (headless) runs the Compare pane for real (three columns streaming, a few
  prompts) while a 10 ms timer on the app's loop records how late it fires. Goal < 50 ms.
- demo_first_frame_s: `deepdive demo` in a fresh process, from spawn to the first frame (the
  app's Ready event), and whether torch was imported by then. Goal < 0.5 s, torch not loaded.

Usage: python bench/compare.py [--run tiny] [--tokens 64] [--repeats 5]
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.run import MODEL_FOLDERS as STAGES  # noqa: E402  (the three columns: base, sft, rl)


def time_columns(client, run: str, stages, prompt_ids, tokens: int, seed: int,
                 threads: bool = False) -> float:
    """Seconds until every column has streamed `tokens` tokens: through stream_many, or with
    one thread per column calling stream (`threads`)."""
    from engine.api import StreamRequest
    from engine.model.sampler import SampleSettings

    settings = SampleSettings(temperature=0.8, top_k=50, max_tokens=tokens, seed=seed,
                              n_alternatives=1)
    counts = dict.fromkeys(range(len(stages)), 0)

    def column(i: int, stage: str) -> None:
        for _ in client.stream(run, stage, prompt_ids, settings, (), threading.Event()):
            counts[i] += 1

    t0 = time.perf_counter()
    if threads:
        workers = [threading.Thread(target=column, args=(i, s)) for i, s in enumerate(stages)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    else:
        for i, item in client.stream_many([StreamRequest(run, s, prompt_ids, settings)
                                           for s in stages]):
            assert not isinstance(item, Exception), item
            counts[i] += 1
    elapsed = time.perf_counter() - t0
    assert all(n == tokens for n in counts.values()), f"short columns: {counts}"
    return elapsed


def three_vs_one(run: str, tokens: int, repeats: int) -> dict:
    from engine.api import ModelClient
    from engine.data.tasks import curated_prompts
    from engine.data.world import build_world
    from engine.run import RunFolder
    from engine.tokens.chat import render_prompt

    client = ModelClient()
    for stage in STAGES:
        client.load(run, stage)  # warm: the goal is about decoding, not three cold starts
    tok = client.tokenizer(run)
    world = build_world(int(RunFolder.of(run).read_info().get("seed", 0)))
    ids = render_prompt(tok, curated_prompts(world)[0].messages)
    time_columns(client, run, ["sft"], ids, 8, 0)  # warm-up (allocator, kernels, the stack)
    time_columns(client, run, STAGES, ids, 8, 0)
    # Interleaved, so that a change in the (shared) machine's load hits every figure alike.
    one, three, threads = [], [], []
    for r in range(repeats):
        one.append(time_columns(client, run, ["sft"], ids, tokens, r))
        three.append(time_columns(client, run, STAGES, ids, tokens, r))
        threads.append(time_columns(client, run, STAGES, ids, tokens, r, threads=True))
    one, three, threads = (statistics.median(x) for x in (one, three, threads))
    return {"one_column_s": round(one, 4), "three_columns_s": round(three, 4),
            "three_vs_one_ratio": round(three / one, 3),
            "threads_three_columns_s": round(threads, 4), "threads_ratio": round(threads / one, 3)}


async def ui_lag(run: str, prompts: int) -> dict:
    """Lateness of a 10 ms timer while the pane streams three columns for `prompts` prompts."""
    from tui.app import DeepdiveApp
    from tui.panes.compare import ComparePane

    app = DeepdiveApp(start_tab="compare", run=run)
    lags: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(ComparePane)
        while len(pane.problems) == 0:
            await pilot.pause(0.05)
        await app.workers.wait_for_complete()  # the three models are loaded
        expected = [time.perf_counter() + 0.01]

        def tick() -> None:
            now = time.perf_counter()
            lags.append(max(0.0, now - expected[0]) * 1000)
            expected[0] = now + 0.01

        timer = app.set_interval(0.01, tick)
        t0 = time.perf_counter()
        for i in range(prompts):
            pane.query_one("#compare-prompt").value = ""
            pane.problem = pane.problems[i % len(pane.problems)]
            from tui.panes.compare_runner import user_text

            pane.query_one("#compare-prompt").value = user_text(pane.problem)
            pane.action_run()
            await pilot.pause(0.05)
            await app.workers.wait_for_complete()
            await pilot.pause(0.05)  # let the last batched messages land
        timer.stop()
        streamed_s = time.perf_counter() - t0
    lags.sort()
    p95 = lags[int(0.95 * (len(lags) - 1))] if lags else float("nan")
    return {"p95_lag_ms": round(p95, 2), "max_lag_ms": round(max(lags, default=0), 2),
            "timer_ticks": len(lags), "streamed_s": round(streamed_s, 2)}


FIRST_FRAME = r"""
import json, sys, time
t_spawn = float(sys.argv[1])
import tui.app as ta
class Timed(ta.DeepdiveApp):
    CSS_PATH = ta.__file__.replace("app.py", "app.tcss")  # relative paths need a source file
    def on_ready(self) -> None:
        print(json.dumps({"first_frame_s": time.time() - t_spawn,
                          "torch_loaded": "torch" in sys.modules}), flush=True)
        self.exit()
    def run(self, **kw):
        return super().run(headless=True, size=(80, 24))
ta.DeepdiveApp = Timed
from deepdive.cli import app
app(["demo", "--run", sys.argv[2]], standalone_mode=False)
"""


def first_frame(run: str, repeats: int) -> dict:
    """`deepdive demo` from process spawn to its first frame, in fresh processes."""
    times, torch_loaded = [], False
    for _ in range(repeats):
        t = time.time()
        out = subprocess.run([sys.executable, "-c", FIRST_FRAME, str(t), run], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        line = [x for x in out.stdout.splitlines() if x.startswith("{")]
        if out.returncode or not line:
            raise RuntimeError(f"demo did not start: {out.stderr[-2000:]}")
        result = json.loads(line[-1])
        times.append(result["first_frame_s"])
        torch_loaded |= result["torch_loaded"]
    return {"demo_first_frame_s": round(statistics.median(times), 3),
            "torch_before_first_frame": torch_loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="tiny")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch.set_num_threads for this process (0: torch's default)")
    args = parser.parse_args()

    from engine.run import RunFolder

    missing = [s for s in STAGES if not RunFolder.of(args.run).has_model(s)]
    if missing:
        sys.exit(f"bench/compare.py: run {args.run!r} has no {'/'.join(missing)} model; train it "
                 f"first: deepdive train --preset tiny --run {args.run}")
    result = {"run": args.run, "tokens": args.tokens}
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    result["torch_threads"] = args.torch_threads or "default"
    result.update(first_frame(args.run, args.repeats))
    result.update(three_vs_one(args.run, args.tokens, args.repeats))
    result.update(asyncio.run(ui_lag(args.run, args.prompts)))
    for k, v in result.items():
        print(f"{k:>26}: {v}", file=sys.stderr)
    keys = ("three_vs_one_ratio", "p95_lag_ms", "demo_first_frame_s")
    print(json.dumps({**{k: result[k] for k in keys}, **result}))


if __name__ == "__main__":
    main()
