"""Class activation maps for a whole batch: pick the classes, gather their maps, upsample.

Upsampling goes through :func:`camtool.core.upsample.upsample` (each cell at its receptive-field
centre, or the conventional bilinear placement), for every caller alike.

Everything here works on tensors and is shared by ``camtool cam``, ``camtool batch-cam``,
``camtool eval`` and the ONNX runner.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from camtool.core.upsample import CellGeometry, upsample_matrices
from camtool.errors import ConfigError

__all__ = [
    "CAMBatch",
    "CAMSource",
    "explain_batch",
    "heatmap",
    "resolve_class",
    "select_classes",
    "upsample_maps",
]


class CAMSource(Protocol):
    """Anything that maps a normalised image batch to ``(logits (N,C), cams (N,C,h,w))``."""

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]: ...


@dataclass
class CAMBatch:
    """The result of :func:`explain_batch`, on the CPU, float32.

    Attributes:
        logits: ``(N, C)`` raw scores of all classes.
        probs: ``(N, C)`` softmax of ``logits``.
        class_idx: ``(N, K)`` the classes whose maps were kept, best first.
        cams: ``(N, K, h, w)`` their raw maps (not normalised) at feature-map resolution.
        input_hw: ``(H, W)`` of the model input the maps were computed from.
    """

    logits: Tensor
    probs: Tensor
    class_idx: Tensor
    cams: Tensor
    input_hw: tuple[int, int]


def resolve_class(spec: str | int, class_names: Sequence[str]) -> int:
    """Turn ``--class`` (an index or a class name, case-insensitive) into an index.

    Raises:
        ConfigError: out of range, or no class has that name (with close matches suggested).
    """
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(class_names):
            raise ConfigError(f"class index {index} out of range 0..{len(class_names) - 1}")
        return index
    lowered = [name.lower() for name in class_names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    close = difflib.get_close_matches(text.lower(), lowered, n=3)
    hint = f"; did you mean {', '.join(repr(class_names[lowered.index(c)]) for c in close)}?"
    raise ConfigError(f"unknown class {text!r}" + (hint if close else ""))


def select_classes(logits: Tensor, target: int | None, topk: int) -> Tensor:
    """``(N, K)`` class indices: ``target`` alone if given, else the top ``topk`` predictions."""
    if target is not None:
        return torch.full((logits.shape[0], 1), target, dtype=torch.long, device=logits.device)
    k = min(topk, logits.shape[1])
    return logits.topk(k, dim=1).indices


@torch.inference_mode()
def explain_batch(
    source: CAMSource, images: Tensor, *, target: int | None = None, topk: int = 1
) -> CAMBatch:
    """Run one forward pass and keep the maps of the requested classes.

    Args:
        source: the model (see :class:`CAMSource`).
        images: ``(N, 3, H, W)`` normalised images.
        target: one class for every image, or ``None`` for the predicted ones.
        topk: with no target, how many of the best classes to keep maps for.
    """
    logits, cams = source(images)
    chosen = select_classes(logits, target, topk)
    index = chosen[:, :, None, None].expand(-1, -1, cams.shape[2], cams.shape[3])
    kept = cams.gather(1, index.to(cams.device))
    logits = logits.float().cpu()
    input_hw = (int(images.shape[-2]), int(images.shape[-1]))
    return CAMBatch(logits, logits.softmax(dim=1), chosen.cpu(), kept.float().cpu(), input_hw)


def upsample_maps(
    cams: Tensor,
    size: tuple[int, int],
    *,
    mode: str = "aligned",
    geometry: CellGeometry | None = None,
    input_hw: tuple[int, int] | None = None,
) -> Tensor:
    """Upsample raw maps ``(..., h, w)`` to ``size`` = (H, W), float32, on their own device.

    The interpolation matrices of :func:`camtool.core.upsample.upsample_matrices` (see there for
    ``mode``, ``geometry`` and ``input_hw``; ``input_hw=None`` means the maps were computed from
    an input of ``size``) applied as ``Wy @ cam @ Wx.T``. Not normalised.
    """
    wy, wx = upsample_matrices(
        (int(cams.shape[-2]), int(cams.shape[-1])),
        size,
        mode=mode,
        geometry=geometry,
        input_hw=input_hw,
    )
    maps = cams.float()
    return torch.from_numpy(wy).to(maps.device) @ maps @ torch.from_numpy(wx).to(maps.device).T


def heatmap(
    cam: Tensor,
    size: tuple[int, int],
    *,
    mode: str = "aligned",
    geometry: CellGeometry | None = None,
    input_hw: tuple[int, int] | None = None,
) -> np.ndarray:
    """Upsample one raw map ``(h, w)`` to ``size`` = (H, W) and min-max normalise it to [0, 1].

    Args:
        cam: the raw map, at feature-map resolution.
        size: the output size, e.g. the original image's ``(height, width)``.
        mode: ``"aligned"`` (each cell at its receptive-field centre) or ``"conventional"``
            (bilinear, ``align_corners=False``).
        geometry: the model's cell geometry (:attr:`camtool.core.runner.ModelInfo.geometry`).
        input_hw: the model input's ``(height, width)`` when it differs from ``size`` (the
            image was resized for the model); the placement is carried through that scale.

    Returns:
        float32 ``(H, W)`` in [0, 1]; all zeros for a constant map.

    Raises:
        ConfigError: ``"aligned"`` for a model without a recorded geometry, or a bad mode.
    """
    up = upsample_maps(cam.detach().cpu(), size, mode=mode, geometry=geometry, input_hw=input_hw)
    low, high = up.min(), up.max()
    span = high - low
    out = (up - low) / span if span > 0 else torch.zeros_like(up)
    return out.numpy().astype(np.float32, copy=False)
