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
    """Turn a class spec (``--class``) into a class index, never guessing.

    The rules, in order:

    1. ``name:X`` means the class named ``X``; ``index:N`` and ``#N`` mean index ``N``.
    2. A spec that is a class name (exactly, else case-insensitively) means that class --
       unless it is also a whole number ``N`` that is a valid index of *another* class (classes
       named ``"1"`` ... ``"12"`` sort as ``1, 10, 11, 12, 2 ...``): then it is refused, saying
       how to write each meaning.
    3. Any other whole number is an index.

    Args:
        spec: what the user wrote (an ``int`` is an index).
        class_names: the model's classes, in index order.

    Returns:
        The class index.

    Raises:
        ConfigError: an ambiguous spec, an index out of range, or no such class (the closest
            names listed); exit code 2.
    """
    if isinstance(spec, int):
        return _class_index(spec, class_names)
    text = str(spec).strip()
    kind, _, value = text.partition(":")
    if text not in class_names and kind.strip().lower() in ("name", "index") and value:
        if kind.strip().lower() == "index":
            return _class_index(_whole_number(value.strip(), text), class_names)
        return _class_by_name(value.strip(), class_names)
    if text.startswith("#") and text not in class_names:
        return _class_index(_whole_number(text[1:].strip(), text), class_names)
    named = _named(text, class_names)
    number = int(text) if text.lstrip("-").isdigit() else None
    if named is not None:
        if number is not None and number != named and 0 <= number < len(class_names):
            raise ConfigError(
                f"class {text!r} is ambiguous: the class named {text!r} has index {named}, and "
                f"index {number} is {class_names[number]!r}; say name:{text} or index:{text}"
            )
        return named
    if number is not None:
        return _class_index(number, class_names)
    return _class_by_name(text, class_names)


def _named(text: str, class_names: Sequence[str]) -> int | None:
    """The index of the class named ``text``: exactly, else the one case-insensitive match."""
    if text in class_names:
        return list(class_names).index(text)
    folded = [i for i, name in enumerate(class_names) if name.casefold() == text.casefold()]
    if len(folded) > 1:
        shown = ", ".join(repr(class_names[i]) for i in folded)
        raise ConfigError(f"class {text!r} matches {shown} (case differs); write it exactly")
    return folded[0] if folded else None


def _whole_number(text: str, spec: str) -> int:
    if not text.lstrip("-").isdigit():
        raise ConfigError(f"class {spec!r}: an index must be a whole number")
    return int(text)


def _class_index(index: int, class_names: Sequence[str]) -> int:
    if not 0 <= index < len(class_names):
        raise ConfigError(f"class index {index} out of range 0..{len(class_names) - 1}")
    return index


def _class_by_name(text: str, class_names: Sequence[str]) -> int:
    """The class named ``text``, or an error listing the closest names."""
    named = _named(text, class_names)
    if named is not None:
        return named
    lowered = [name.casefold() for name in class_names]
    close = difflib.get_close_matches(text.casefold(), lowered, n=3, cutoff=0.5)
    if close:
        hint = "; closest: " + ", ".join(repr(class_names[lowered.index(c)]) for c in close)
    else:
        listed = ", ".join(repr(n) for n in class_names[:5])
        hint = f"; the classes are {listed}" + (" ..." if len(class_names) > 5 else "")
    raise ConfigError(f"unknown class {text!r}{hint}")


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
    [0, 1]; float32.

    A flat map (one cell, or all cells equal) is all zeros: what upsampling adds to it is float
    rounding (about 1e-7 of its value), which normalising would blow up into a random pattern.
    """
    up = _bilinear(as_array(cam), size)
    low, high = float(up.min()), float(up.max())
    span = high - low
    if span <= 1e-5 * max(abs(high), abs(low)) or span == 0:
        return np.zeros_like(up)
    return (up - low) / np.float32(span)
