"""Class activation maps for a whole batch: pick the classes, gather their maps, upsample.

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
import torch.nn.functional as F
from torch import Tensor

from camtool.errors import ConfigError

__all__ = ["CAMBatch", "CAMSource", "explain_batch", "heatmap", "resolve_class", "select_classes"]


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
    """

    logits: Tensor
    probs: Tensor
    class_idx: Tensor
    cams: Tensor


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
    return CAMBatch(logits, logits.softmax(dim=1), chosen.cpu(), kept.float().cpu())


def heatmap(cam: Tensor, size: tuple[int, int]) -> np.ndarray:
    """Upsample one raw map to ``size`` = (height, width) and min-max normalise it to [0, 1].

    A flat map (one cell, or all cells equal) is all zeros: what upsampling adds to it is float
    rounding (about 1e-7 of its value), which normalising would blow up into a random pattern.
    """
    up = F.interpolate(cam[None, None].float(), size=size, mode="bilinear", align_corners=False)
    up = up[0, 0]
    low, high = up.min(), up.max()
    span = high - low
    flat = span <= 1e-5 * torch.maximum(high.abs(), low.abs())
    out = torch.zeros_like(up) if flat else (up - low) / span
    return out.numpy().astype(np.float32, copy=False)
