"""Reproducible training: an epoch's order comes from ``(seed, epoch)`` and each image's
augmentation from ``(seed, epoch, index)``, whatever ran before and however many loader workers;
:func:`rng_state` / :func:`set_rng_state` carry the global random states across a resume."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

__all__ = [
    "EpochSampler",
    "SeededItems",
    "item_seed",
    "rng_state",
    "seed_everything",
    "set_rng_state",
]


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one image in one epoch (a fixed mix, the same in every process)."""
    return ((seed * 1_000_003 + epoch) * 1_000_000_007 + index) % (2**63 - 1)


class SeededItems(Dataset[Any]):
    """Fetch ``(epoch, index)`` keys with torch's generator seeded from ``(seed, epoch, index)``
    (restored afterwards outside loader workers)."""

    def __init__(self, base: Dataset[Any], seed: int) -> None:
        self.base, self.seed = base, seed

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        generator = torch.random.default_generator
        in_worker = torch.utils.data.get_worker_info() is not None
        saved = None if in_worker else generator.get_state()
        generator.manual_seed(item_seed(self.seed, epoch, index))
        try:
            return self.base[index]
        finally:
            if saved is not None:
                generator.set_state(saved)


class EpochSampler(Sampler[tuple[int, int]]):
    """Yield ``(epoch, index)`` keys of one epoch in a ``DistributedSampler``'s order: whole
    batches only (unless there is less than one), less the first ``skip`` keys."""

    def __init__(self, inner: DistributedSampler[Any], batch_size: int) -> None:
        self.inner, self.batch_size = inner, batch_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select epoch ``epoch`` (1-based) and how many of its keys are done."""
        self.epoch, self.skip = epoch, skip
        self.inner.set_epoch(epoch)

    def epoch_length(self) -> int:
        """Keys in a whole epoch (per process)."""
        total = len(self.inner)
        return total if total < self.batch_size else total - total % self.batch_size

    def num_batches(self) -> int:
        """Batches in a whole epoch (per process)."""
        return math.ceil(self.epoch_length() / self.batch_size)

    def __len__(self) -> int:
        return max(0, self.epoch_length() - self.skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in islice(iter(self.inner), self.skip, self.epoch_length()):
            yield self.epoch, int(index)


def rng_state() -> dict[str, Any]:
    """Every global random state, as plain tensors, lists and numbers (``weights_only``-safe)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {"version": int(version), "internal": [int(v) for v in internal], "gauss": gauss},
        "numpy": {
            "kind": str(kind),
            "keys": [int(k) for k in keys],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Put back what :func:`rng_state` saved (the CUDA part only where CUDA is in use)."""
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    npy = state["numpy"]
    keys = np.asarray(npy["keys"], dtype=np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators from ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
