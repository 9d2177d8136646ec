"""Data-parallel training under ``torchrun``: one process per device, gradients averaged by DDP.

``torchrun --nproc_per_node=N -m deepdive train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK in each
process's environment; without them we are a single process and nothing here does anything.
Backend: NCCL on CUDA, gloo on CPU. Rank 0 alone writes events and checkpoints; every rank
builds the same global batch from (seed, step) and keeps its own slice of rows, so the global
batch is identical whatever the number of processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def shard(self, rows: int) -> slice:
        """This rank's rows of a global batch of ``rows`` (which must divide evenly)."""
        if rows % self.world_size:
            raise ValueError(f"global batch {rows} does not divide over "
                             f"{self.world_size} processes")
        per = rows // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)


def env_dist_info() -> DistInfo:
    """What torchrun told this process (a single process when it told nothing)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def setup(device_name: str | None = None) -> tuple[DistInfo, torch.device]:
    """Start the process group when launched by torchrun; return (info, this process's device)."""
    from engine.model.device import pick_device

    info = env_dist_info()
    if not info.enabled:
        return info, pick_device(device_name)
    wants_cuda = (device_name or "auto") in ("auto", "cuda") and torch.cuda.is_available()
    if wants_cuda or (device_name or "").startswith("cuda"):
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return info, device


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """The model DDP-wrapped when there are several processes, else the model itself."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model itself, out of DDP's wrapper and torch.compile's: what checkpoints save (its
    state dict has the plain names) and what evals and samples run, eagerly."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def barrier(info: DistInfo) -> None:
    """Wait for every process (e.g. until rank 0 has written a checkpoint the others read)."""
    if info.enabled:
        dist.barrier()


def all_reduce_mean(value: float, info: DistInfo, device: torch.device) -> float:
    """A scalar averaged over ranks (for logging the global loss)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / info.world_size


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank if any rank says True (a stop request seen by one process stops all)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank if ``flag`` is True on any (``broadcast_flag`` on the device its
    backend reduces on): a rank that failed at its part of some work, a rank that did not find
    a file. It is a collective, so it also waits like a barrier: call it where a barrier would
    stand, so that no rank waits there for one that gave up."""
    if not info.enabled:
        return flag
    # NCCL reduces CUDA tensors only (setup() made this process's device current), gloo CPU ones
    on_cuda = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if on_cuda else torch.device("cpu")
    return broadcast_flag(flag, info, device)
