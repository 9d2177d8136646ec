"""Where the model runs: device choice, mixed precision, and the peak FLOP/s that MFU divides by."""

from __future__ import annotations

import contextlib
import functools
import time

import torch

# Dense bf16 tensor-core peaks from the vendors' data sheets (no sparsity), FLOP/s.
GPU_PEAK_BF16 = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
}


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def pick_device(name: str | None = None) -> torch.device:
    """The best device here (cuda -> mps -> cpu), or the one named ("cpu", "cuda", "cuda:1", "mps").

    A named device that this machine lacks is a ValueError that says what is available.
    """
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; try one of {available_devices()}") from None
    ok = {
        "cpu": True,
        "cuda": torch.cuda.is_available()
        and (device.index is None or device.index < torch.cuda.device_count()),
        "mps": _mps_available(),
    }.get(device.type, False)
    if not ok:
        raise ValueError(f"device {name!r} is not available here; available: {available_devices()}")
    return device


def available_devices() -> list[str]:
    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    names = [f"cuda:{i}" for i in range(n_cuda)]
    if _mps_available():
        names.append("mps")
    return names + ["cpu"]


def autocast(device: torch.device | str):
    """bf16 autocast on CUDA (matmuls in bf16, reductions in fp32); plain fp32 elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def peak_flops(device: torch.device | str) -> float:
    """The FLOP/s that MFU divides by: a data-sheet bf16 peak for known GPUs, else measured."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, flops in GPU_PEAK_BF16.items():
            if key in name:
                return flops
    return measured_matmul_flops(str(device))


@functools.cache
def measured_matmul_flops(device: str, n: int = 2048, repeats: int = 3) -> float:
    """Best-of-``repeats`` FLOP/s of an n x n fp32 matmul (bf16 on CUDA); measured once per device.

    On a CPU this is what the hardware actually delivers to PyTorch, a fairer denominator
    than a theoretical peak that depends on vector units and clocks we cannot see.
    """
    dev = torch.device(device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):  # the first run warms up (allocations, thread pool)
        _sync(dev)
        t0 = time.perf_counter()
        a @ b
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
