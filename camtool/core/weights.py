"""Reading weight files safely, and the checks every set of weights passes before it is used."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from camtool.errors import CamtoolError

__all__ = ["BN_COUNTER", "check_finite", "fill_bn_counters", "read_weights"]

#: BatchNorm's step counter: a buffer older PyTorch versions did not save (PyTorch < 0.4.1).
BN_COUNTER = "num_batches_tracked"

_REASON_CHARS = 120


def read_weights(path: Path, *, hint: str = "") -> Any:
    """``torch.load`` ``path`` with ``weights_only=True``; any failure is one line, + ``hint``.

    Raises:
        CamtoolError: missing, empty, not a PyTorch file (text, a foreign zip, truncated), or
            one that would need to run code to load; the message names ``path``.
    """
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    if not path.is_file():
        raise CamtoolError(f"checkpoint not found: {path}{tail}")
    if path.stat().st_size == 0:
        raise CamtoolError(f"{path} is an empty file, not a PyTorch checkpoint{tail}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CamtoolError(
            f"refusing to load {path}: it is not a plain weights file (loading it would need to"
            f" run code from it, or it is not a checkpoint at all){tail}"
        ) from None
    except MemoryError:
        raise CamtoolError(
            f"{path} is not a readable PyTorch checkpoint (bad sizes){tail}"
        ) from None
    except Exception as exc:  # torch's readers raise many kinds on foreign or damaged files
        with open(path, "rb") as f:  # zip archives, or legacy pickles (protocol byte 0x80)
            head = f.read(8)
        if not head.startswith((b"PK", b"\x80")):
            reason = f"neither a zip archive nor a pickle: it starts with {head!r}"
        else:  # the first sentence of torch's error (for a foreign file: ``KeyError: 101``)
            reason = (" ".join(str(exc).split()) or type(exc).__name__).split(". ")[0]
            if len(reason) > _REASON_CHARS:
                reason = reason[: _REASON_CHARS - 3] + "..."
        raise CamtoolError(
            f"{path} is not a readable PyTorch checkpoint ({reason}){tail}"
        ) from None


def fill_bn_counters(
    state: Mapping[str, Tensor], wanted: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """``state`` plus, as 0, the BatchNorm counters ``wanted`` has and ``state`` lacks (as
    torchvision loads old files; the counter only matters for ``momentum=None``)."""
    filled = dict(state)
    for key, value in wanted.items():
        if key.rsplit(".", 1)[-1] == BN_COUNTER and key not in filled:
            filled[key] = torch.zeros_like(value, device="cpu")
    return filled


def check_finite(state: Mapping[str, Tensor], source: str) -> None:
    """Refuse weights holding NaN or infinity.

    Raises:
        CamtoolError: naming ``source``, the first offending tensor and how many values.
    """
    for key, value in state.items():
        if isinstance(value, Tensor) and value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise CamtoolError(
                    f"{source} holds non-finite weights: {bad} NaN or infinite value(s) in {key}"
                    " (a diverged or damaged training run); use an earlier checkpoint"
                )
