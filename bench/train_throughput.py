"""Pretraining throughput of a preset's model on this machine, as a share of its matmul peak.

For each batch x window shape: tokens/s of full training steps (forward, backward, AdamW) on
token windows, the model's training FLOPs per token (6N + attention at that window), achieved
FLOP/s, and MFU = achieved / the peak an n x n fp32 matmul reaches here, timed in this same
process (before and after; the best is used, so MFU is never flattered by a slow peak reading);
on a known GPU the peak is its data-sheet bf16 figure (engine/model/device.py). Steps run under
the engine's autocast (bf16 on CUDA, fp32 elsewhere; "dtype" says which). Peak memory per shape:
torch.cuda.max_memory_allocated on CUDA; elsewhere the process's peak resident set (ru_maxrss,
which includes the interpreter and torch itself); "peak_mem_kind" says which.
Optionally also under torch.compile. Torch threads = CPU cores.

Usage: python bench/train_throughput.py [--preset tiny] [--shapes 32x128,64x128,16x256]
       [--steps 15] [--compile] [--device cpu]
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def reset_peak_mem(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mem(device) -> tuple[int, str]:
    """(bytes, what they measure): CUDA's allocator peak since the last reset, else peak RSS."""
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device), "cuda_max_memory_allocated"
    # Linux reports ru_maxrss in KiB; it is the whole process's peak and is never reset.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process_peak_rss"


def measure(model, vocab: int, batch: int, seq: int, steps: int, device) -> float:
    """Training tokens per second over ``steps`` steps after 3 warm-up steps."""
    import torch

    from engine.model.device import _sync, autocast
    from engine.train.loop import make_optimizer
    from engine.train.presets import StageConfig

    opt = make_optimizer(model, StageConfig(steps=1, batch_size=batch, seq_len=seq, lr=1e-3))
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, vocab, (steps + 3, batch, seq + 1), generator=g).to(device)
    for i in range(steps + 3):
        if i == 3:
            _sync(device)
            t0 = time.perf_counter()
        with autocast(device):
            _, loss = model(data[i, :, :-1], data[i, :, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    return batch * seq * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--shapes", default="32x128,64x128,16x256,64x256")
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch

    from engine.model.device import measured_matmul_flops, peak_flops, pick_device
    from engine.model.gpt import GPT, GPTConfig
    from engine.train.pipeline import training_flops_per_token
    from engine.train.presets import get_preset

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    device = pick_device(args.device)
    preset = get_preset(args.preset)
    vocab = preset.vocab_size  # the BPE vocabulary: bytes, merges and the chat special tokens
    peaks = [peak_flops(device)]
    measured_matmul_flops.cache_clear()
    results = []
    for shape in args.shapes.split(","):
        batch, seq = (int(v) for v in shape.lower().split("x"))
        cfg = GPTConfig(vocab_size=vocab, **{**preset.model,
                                            "block_size": max(seq, preset.model["block_size"])})
        for compiled in ([False, True] if args.compile else [False]):
            torch.manual_seed(0)
            model = GPT(cfg).to(device)
            flops = training_flops_per_token(model, seq)
            run = torch.compile(model) if compiled else model
            reset_peak_mem(device)
            try:
                tok_s = measure(run, vocab, batch, seq, args.steps, device)
            except Exception as e:  # noqa: BLE001 - a compile failure is a figure too
                results.append({"batch": batch, "seq": seq, "compile": compiled,
                                "error": f"{type(e).__name__}: {e}"[:200]})
                continue
            results.append({"batch": batch, "seq": seq, "compile": compiled,
                            "tok_s": round(tok_s, 1), "flops_per_token": flops,
                            "achieved_flops": round(tok_s * flops),
                            "peak_mem_bytes": peak_mem(device)[0]})
            del model, run  # free this shape's weights and optimizer state before the next
            print(f"{batch}x{seq} compile={compiled}: {tok_s:,.0f} tok/s", file=sys.stderr)
    peaks.append(peak_flops(device))
    measured_matmul_flops.cache_clear()
    peak = max(peaks)
    for r in results:
        if "achieved_flops" in r:
            r["mfu"] = round(r["achieved_flops"] / peak, 4)
    ok = [r for r in results if "mfu" in r]
    best = max(ok, key=lambda r: r["mfu"]) if ok else None
    n_params = GPT(GPTConfig(vocab_size=vocab, **preset.model)).num_params()
    on_cuda = device.type == "cuda"
    print(json.dumps({"preset": args.preset, "device": str(device),
                      "device_name": torch.cuda.get_device_name(device) if on_cuda else "cpu",
                      "torch": torch.__version__, "threads": cores,
                      "dtype": "bfloat16 autocast" if on_cuda else "float32",
                      "peak_mem_kind": peak_mem(device)[1],
                      "n_params": n_params, "peak_flops": round(peak),
                      "peak_readings": [round(p) for p in peaks], "results": results,
                      "best_mfu": best["mfu"] if best else None,
                      "best_shape": f"{best['batch']}x{best['seq']}" if best else None,
                      "best_tok_s": best["tok_s"] if best else None}))


if __name__ == "__main__":
    main()
