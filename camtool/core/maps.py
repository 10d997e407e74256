"""Class activation maps for a whole batch: pick the classes, gather their maps, upsample.

Everything here works on NumPy arrays (a runner's tensors are converted once, after the forward
pass), so the ONNX path of ``camtool cam`` never imports torch. Shared by ``camtool cam``,
``camtool batch-cam`` and ``camtool eval``.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from camtool.core.runner import is_torch_tensor
from camtool.errors import ConfigError

__all__ = [
    "CAMBatch",
    "CAMSource",
    "as_array",
    "explain_batch",
    "heatmap",
    "resolve_class",
    "select_classes",
    "softmax",
]


class CAMSource(Protocol):
    """Anything that maps a normalised image batch to ``(logits (N,C), cams (N,C,h,w))``, as NumPy
    arrays or tensors (see :class:`~camtool.core.runner.Runner`)."""

    def __call__(self, images: Any) -> tuple[Any, Any]: ...


@dataclass
class CAMBatch:
    """The result of :func:`explain_batch`: float32 / int64 NumPy arrays.

    Attributes:
        logits: ``(N, C)`` raw scores of all classes.
        probs: ``(N, C)`` softmax of ``logits``.
        class_idx: ``(N, K)`` int64, the classes whose maps were kept, best first.
        cams: ``(N, K, h, w)`` their raw maps (not normalised) at feature-map resolution.
    """

    logits: np.ndarray
    probs: np.ndarray
    class_idx: np.ndarray
    cams: np.ndarray


def as_array(value: Any) -> np.ndarray:
    """A float32 NumPy array of ``value`` (a NumPy array, or a tensor on any device)."""
    if is_torch_tensor(value):
        value = value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, computed stably (the maximum subtracted first), float32."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted, dtype=np.float64)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


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


def select_classes(logits: np.ndarray, target: int | None, topk: int) -> np.ndarray:
    """``(N, K)`` int64 class indices: ``target`` alone if given, else the top ``topk``
    predictions, best first (ties: the lower index first)."""
    logits = np.asarray(logits)
    if target is not None:
        return np.full((logits.shape[0], 1), target, dtype=np.int64)
    k = min(topk, logits.shape[1])
    return np.argsort(-logits, axis=1, kind="stable")[:, :k].astype(np.int64)


def explain_batch(
    source: CAMSource, images: Any, *, target: int | None = None, topk: int = 1
) -> CAMBatch:
    """Run one forward pass and keep the maps of the requested classes.

    Args:
        source: the model (see :class:`CAMSource`).
        images: ``(N, 3, H, W)`` normalised images, a float32 NumPy array or a tensor.
        target: one class for every image, or ``None`` for the predicted ones.
        topk: with no target, how many of the best classes to keep maps for.

    Returns:
        A :class:`CAMBatch` of NumPy arrays.
    """
    logits_out, cams_out = source(images)
    logits, cams = as_array(logits_out), as_array(cams_out)
    chosen = select_classes(logits, target, topk)
    kept = np.take_along_axis(cams, chosen[:, :, None, None], axis=1)
    return CAMBatch(logits, softmax(logits), chosen, np.ascontiguousarray(kept))


def _bilinear(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling with half-pixel centres (PyTorch's ``align_corners=False``), float32.

    Separable: ``Wy @ cam @ Wx.T`` with one interpolation matrix per axis. Stand-in until the
    shared upsampling module places cells at their receptive-field centres.
    """

    def weights(out: int, cells: int) -> np.ndarray:
        centre = (np.arange(out, dtype=np.float64) + 0.5) * (cells / out) - 0.5
        centre = np.clip(centre, 0.0, cells - 1)
        low = np.floor(centre).astype(np.int64)
        high = np.minimum(low + 1, cells - 1)
        frac = centre - low
        matrix = np.zeros((out, cells), dtype=np.float64)
        rows = np.arange(out)
        np.add.at(matrix, (rows, low), 1.0 - frac)
        np.add.at(matrix, (rows, high), frac)
        return matrix

    cam64 = np.asarray(cam, dtype=np.float64)
    up = weights(size[0], cam64.shape[0]) @ cam64 @ weights(size[1], cam64.shape[1]).T
    return up.astype(np.float32)


def heatmap(cam: Any, size: tuple[int, int]) -> np.ndarray:
    """Upsample one raw ``(h, w)`` map to ``size`` = (height, width) and min-max normalise it to
    [0, 1]; float32 (all zeros for a flat map)."""
    up = _bilinear(as_array(cam), size)
    low, high = float(up.min()), float(up.max())
    span = high - low
    return (up - low) / np.float32(span) if span > 0 else np.zeros_like(up)
