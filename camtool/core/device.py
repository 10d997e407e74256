"""Picking the device to run on, and running on it: channels-last memory and mixed precision."""

from __future__ import annotations

import contextlib
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from camtool.errors import CamtoolError

_M = TypeVar("_M", bound=nn.Module)

__all__ = ["amp_dtype", "autocast", "place_model", "precision_name", "resolve_device", "to_device"]


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|mps`` (or ``cuda:1``) into a usable :class:`torch.device`;
    ``auto`` takes CUDA, then MPS, then the CPU.

    Raises:
        CamtoolError: the requested device is not available on this machine.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CamtoolError("device 'cuda' requested but CUDA is not available; use --device cpu")
    if name == "mps" and not _mps_available():
        raise CamtoolError("device 'mps' requested but MPS is not available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise CamtoolError(f"unknown device {name!r}; use auto, cpu, cuda or mps") from None


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The mixed-precision dtype: ``torch.bfloat16`` on CUDA where supported, else
    ``torch.float16``; ``None`` (fp32) off CUDA or with ``enabled`` false."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def precision_name(dtype: torch.dtype | None) -> str:
    """``bf16``, ``fp16`` or ``fp32`` for a dtype from :func:`amp_dtype`."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[Any]:
    """Autocast to ``dtype`` on ``device``; a no-op context for ``None`` (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.preserve_format


def place_model(model: _M, device: torch.device, *, channels_last: bool) -> _M:
    """``model`` moved to ``device`` (in place), in channels-last (NHWC) memory if asked."""
    return model.to(device).to(memory_format=_memory_format(channels_last))


def to_device(images: Tensor, device: torch.device, *, channels_last: bool) -> Tensor:
    """A float ``(N, 3, H, W)`` batch copied to ``device``, in channels-last memory if asked."""
    return images.to(device, non_blocking=True, memory_format=_memory_format(channels_last))
