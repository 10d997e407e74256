"""Picking the device to run on."""

from __future__ import annotations

import torch

from camtool.errors import CamtoolError

__all__ = ["resolve_device"]


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|mps`` (or ``cuda:1``) into a usable :class:`torch.device`;
    ``auto`` takes CUDA, then MPS, then the CPU.

    Raises:
        CamtoolError: the requested device is not available on this machine.
    """
    name = str(getattr(name, "value", name))
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
