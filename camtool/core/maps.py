"""Class activation maps for a whole batch: pick the classes, gather their maps, upsample.

Everything works on NumPy arrays (a runner's tensors are converted once, after the forward
pass), so the ONNX path of ``camtool cam`` never imports torch.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from camtool.core.localize import minmax_normalize
from camtool.core.runner import as_array
from camtool.core.upsample import CellGeometry, interpolation_matrix
from camtool.errors import ConfigError

__all__ = [
    "CAMBatch",
    "explain_batch",
    "heatmap",
    "resolve_class",
    "select_classes",
    "softmax",
    "upsample_maps",
]


@dataclass
class CAMBatch:
    """The result of :func:`explain_batch`: float32 / int64 NumPy arrays.

    Attributes:
        logits: ``(N, C)`` raw scores of all classes.
        probs: ``(N, C)`` softmax of ``logits``.
        class_idx: ``(N, K)`` int64, the classes whose maps were kept, best first.
        cams: ``(N, K, h, w)`` their raw maps (not normalised) at feature-map resolution.
        input_hw: ``(H, W)`` of the model input the maps were computed from.
    """

    logits: np.ndarray
    probs: np.ndarray
    class_idx: np.ndarray
    cams: np.ndarray
    input_hw: tuple[int, int]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, computed stably (the maximum subtracted first), float32."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted, dtype=np.float64)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def resolve_class(spec: str | int, class_names: Sequence[str]) -> int:
    """Turn a class spec (``--class``) into a class index, never guessing.

    In order: ``name:X`` is the class named ``X``, ``index:N`` and ``#N`` index ``N``; a class
    name (exactly, else case-insensitively) is that class, unless it is also a whole number
    that indexes *another* class (classes ``"1"`` ... ``"12"`` sort as ``1, 10, 11 ...``): then
    it is refused as ambiguous; any other whole number is an index. An ``int`` is an index.

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
    source: Callable[[Any], tuple[Any, Any]],
    images: Any,
    *,
    target: int | None = None,
    topk: int = 1,
) -> CAMBatch:
    """Run one forward pass and keep the maps of ``target`` (else the top ``topk`` classes).

    ``source`` is a :class:`~camtool.core.runner.Runner` or any callable mapping ``(N, 3, H, W)``
    normalised ``images`` (NumPy or tensor) to ``(logits (N, C), cams (N, C, h, w))``.

    Returns:
        A :class:`CAMBatch` of NumPy arrays.
    """
    logits_out, cams_out = source(images)
    logits, cams = as_array(logits_out), as_array(cams_out)
    chosen = select_classes(logits, target, topk)
    kept = np.take_along_axis(cams, chosen[:, :, None, None], axis=1)
    input_hw = (int(images.shape[-2]), int(images.shape[-1]))
    return CAMBatch(logits, softmax(logits), chosen, np.ascontiguousarray(kept), input_hw)


def upsample_maps(
    cams: Any,
    size: tuple[int, int],
    *,
    mode: str = "aligned",
    geometry: CellGeometry | None = None,
    input_hw: tuple[int, int] | None = None,
) -> np.ndarray:
    """Upsample raw maps ``(..., h, w)`` (NumPy, or tensors on any device) to ``size`` = (H, W),
    as a float32 NumPy array, not normalised.

    The maps become ``Wy @ cam @ Wx.T`` (:func:`camtool.core.upsample.interpolation_matrix`'s
    ``mode``, ``"aligned"`` needing ``geometry``); ``input_hw`` is the model input's ``(H, W)``,
    ``None`` when it equals ``size``.

    Raises:
        ConfigError: ``"aligned"`` without a geometry, an unknown mode or a bad size.
    """
    if mode == "aligned" and geometry is None:
        raise ConfigError(
            "this model does not record where its map cells sit (stride and offset), so maps "
            "cannot be aligned; re-export it with this camtool, or set cam.upsample = "
            '"conventional"'
        )
    maps = as_array(cams)
    geo = geometry or CellGeometry((1, 1), (0.0, 0.0))
    ins = input_hw or (None, None)
    wy, wx = (
        interpolation_matrix(
            maps.shape[k - 2],
            size[k],
            mode=mode,
            stride=geo.stride[k],
            offset=geo.offset[k],
            in_size=ins[k],
        )
        for k in (0, 1)
    )
    return np.ascontiguousarray(wy @ maps @ wx.T, dtype=np.float32)


def heatmap(
    cam: Any,
    size: tuple[int, int],
    *,
    mode: str = "aligned",
    geometry: CellGeometry | None = None,
    input_hw: tuple[int, int] | None = None,
) -> np.ndarray:
    """One raw map ``(h, w)`` upsampled by :func:`upsample_maps` to ``size`` and min-max normalised.

    Returns:
        float32 ``(H, W)`` in [0, 1] (:func:`camtool.core.localize.minmax_normalize`: a flat map
        is all zeros).

    Raises:
        ConfigError: ``"aligned"`` for a model without a recorded geometry, or a bad mode.
        InputError: the map holds NaN or infinite values.
    """
    up = upsample_maps(cam, size, mode=mode, geometry=geometry, input_hw=input_hw)
    return minmax_normalize(up)
