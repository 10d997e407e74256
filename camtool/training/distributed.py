"""``torchrun`` support: environment, process group (NCCL on CUDA, else Gloo), collectives;
all no-ops for a single process."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from camtool.errors import CamtoolError, ConfigError

__all__ = [
    "DistContext",
    "all_reduce",
    "barrier",
    "dist_from_env",
    "local_device",
    "process_group",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly one-process) training run."""

    world_size: int = 1  #: processes training together
    rank: int = 0  #: this process's global rank (0 reports and writes files)
    local_rank: int = 0  #: this process's rank on its machine (picks the GPU)

    @property
    def enabled(self) -> bool:
        """More than one process trains together."""
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """This process is rank 0."""
        return self.rank == 0


def dist_from_env() -> DistContext:
    """Read torchrun's ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (absent: one process)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError("WORLD_SIZE, RANK and LOCAL_RANK must be whole numbers") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"bad distributed environment: WORLD_SIZE={world} RANK={rank}")
    return DistContext(world, rank, local)


def local_device(device: torch.device, ctx: DistContext) -> torch.device:
    """``device``, or under ``torchrun`` on CUDA this process's GPU, made the current one."""
    if device.type == "cuda" and ctx.enabled:
        device = torch.device("cuda", ctx.local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
    return device


@contextlib.contextmanager
def process_group(ctx: DistContext, device: torch.device) -> Iterator[None]:
    """Start the process group if this is a distributed run and nobody started it yet."""
    if not ctx.enabled:
        yield
        return
    if not dist.is_available():
        raise CamtoolError(
            "this PyTorch build cannot train distributed (torch.distributed missing)"
        )
    if device.type == "mps":
        raise CamtoolError("distributed training runs on CUDA or the CPU, not on MPS")
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        yield
    finally:
        if owned and dist.is_initialized():
            dist.destroy_process_group()


def all_reduce(tensor: Tensor, ctx: DistContext) -> Tensor:
    """Sum ``tensor`` over all processes, in place, and return it."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(ctx: DistContext) -> None:
    """Wait until every process gets here."""
    if ctx.enabled:
        dist.barrier()
