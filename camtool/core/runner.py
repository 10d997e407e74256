"""The ``Runner`` protocol: a model behind one call, ``images -> (logits, cams)``, and its info.

Runners answer in kind: NumPy in, NumPy out (so the ONNX path never imports torch); tensors in,
tensors out. This module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, overload

import numpy as np

from camtool.core.imagenet import IMAGENET_MEAN, IMAGENET_STD, IMG_SIZE_RANGE
from camtool.core.upsample import CellGeometry

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["RGB", "ModelInfo", "Runner", "as_array", "checked_preprocessing", "is_torch_tensor"]

RGB = tuple[float, float, float]
"""Per-channel values (mean, std) in R, G, B order."""


@dataclass
class ModelInfo:
    """What a runner knows about its model.

    ``geometry``: where the map's cells sit on the input (:mod:`camtool.core.upsample`); ``None``
    allows only conventional upsampling. ``output_stride``: input pixels per map cell.
    """

    class_names: list[str]
    img_size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    arch: str = "resnet18"
    source: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    geometry: CellGeometry | None = None
    output_stride: int = 32


class Runner(Protocol):
    """A model behind one call: ``(N, 3, H, W)`` float32 normalised images -> ``(logits (N, C),
    cams (N, C, h, w))``, as NumPy arrays for a NumPy input and as tensors for a tensor input."""

    info: ModelInfo
    device: str

    @overload
    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    @overload
    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]: ...


def is_torch_tensor(value: object) -> bool:
    """Whether ``value`` is a torch tensor, found without importing torch (a tensor implies it)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def as_array(value: Any) -> np.ndarray:
    """A float32 NumPy array of ``value`` (a NumPy array, or a tensor on any device)."""
    if is_torch_tensor(value):
        value = value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def checked_preprocessing(img_size: Any, mean: Any, std: Any) -> tuple[int, RGB, RGB]:
    """A model file's input size and normalisation, checked before anything is resized with them.

    Returns:
        ``img_size`` (an ``int`` in :data:`~camtool.core.imagenet.IMG_SIZE_RANGE`), three finite
        means and three finite, positive stds, as 3-tuples of floats.

    Raises:
        ValueError: a value outside those ranges, naming the field and the value.
    """
    low, high = IMG_SIZE_RANGE
    if isinstance(img_size, bool) or not isinstance(img_size, int) or not low <= img_size <= high:
        raise ValueError(f"img_size {img_size!r} is not a side of {low}..{high} pixels")
    stats: list[RGB] = []
    for name, given in (("mean", mean), ("std", std)):
        try:
            values = [float(v) for v in given]
        except (TypeError, ValueError):
            values = []
        if len(values) != 3 or not all(math.isfinite(v) for v in values):
            raise ValueError(f"{name} {given!r} is not three finite numbers")
        if name == "std" and min(values) <= 0:
            raise ValueError(f"std {given!r} has a value <= 0")
        stats.append((values[0], values[1], values[2]))
    return img_size, stats[0], stats[1]
