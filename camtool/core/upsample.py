"""Turning a raw class activation map into pixels: each feature cell at its receptive-field centre.

Cell ``i`` of a feature map (along one axis) has its receptive field centred on input pixel
``offset + stride * i`` (:mod:`camtool.core.receptive` derives both from the layers; every
torchvision ResNet has ``offset = 0``). Pixel coordinates are pixel *centres*: pixel ``j`` is
the unit square centred on ``j``, so an image spans ``[-0.5, size - 0.5]``.

Two placements (``cam.upsample``), both linear interpolation between the two nearest cells:

``aligned`` (the default)
    Cell ``i`` sits on input pixel ``offset + stride * i``. Output pixel ``j`` of ``out``
    pixels, for a model input of ``in_`` pixels, lies at input coordinate
    ``u = (j + 0.5) * in_ / out - 0.5`` (the pixel-centre convention of PIL's ``resize`` and
    ``align_corners=False``), so a map can be drawn on the *original* image when the model saw
    a resized copy. Beyond the first and the last cell the map is held constant, so input sizes
    that are not a multiple of the stride need nothing special.

``conventional``
    ``F.interpolate(..., mode="bilinear", align_corners=False)``: cell ``i`` of ``n`` at output
    coordinate ``(i + 0.5) * out / n - 0.5``, whatever the network. This puts a ResNet's cell
    about half a cell below and right of its receptive-field centre (7.5 px at stride 16); it is
    kept to compare with published numbers computed that way.

Along each axis that is an ``(out, n)`` float32 matrix ``W`` (at most two non-zero weights a row,
summing to 1), and the map becomes ``Wy @ cam @ Wx.T``. This module imports numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from camtool.choices import UpsampleMode
from camtool.errors import ConfigError

__all__ = [
    "CellGeometry",
    "interpolation_matrix",
    "resnet_geometry",
]


@dataclass(frozen=True)
class CellGeometry:
    """Where the cells of a feature map sit on the model's input, per axis ``(y, x)``.

    Attributes:
        stride: input pixels between neighbouring cells (the network's output stride).
        offset: input pixel coordinate (pixel centres, see the module docstring) of the centre of
            cell 0's receptive field.
    """

    stride: tuple[int, int]
    offset: tuple[float, float]

    def __post_init__(self) -> None:
        if len(self.stride) != 2 or len(self.offset) != 2 or min(self.stride) < 1:
            raise ConfigError(f"a cell geometry needs two strides >= 1 and two offsets: {self}")
        if not all(math.isfinite(o) for o in self.offset):
            raise ConfigError(f"a cell geometry needs finite offsets: {self}")

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        """JSON form: ``{"stride": [sy, sx], "offset": [oy, ox]}``."""
        return {"stride": [int(s) for s in self.stride], "offset": [float(o) for o in self.offset]}

    @classmethod
    def from_dict(cls, value: object, output_stride: int | None = None) -> CellGeometry:
        """Read :meth:`to_dict`'s form back, as recorded in a checkpoint or an export.

        A check against edited or damaged files: the strides must be ``output_stride`` on both
        axes (``None``: unknown), and each offset within two strides of the origin, where the
        receptive-field centre of every accepted family's first cell lies (Inception v3, the
        farthest, at 37 px for stride 32).

        Raises:
            ConfigError: not a dict with two integer strides and two finite offsets, or not
                plausible for ``output_stride``.
        """
        try:
            assert isinstance(value, dict)
            if any(isinstance(v, bool) for v in (*value["stride"], *value["offset"])):
                raise ValueError("true/false is not a number here")
            sy, sx = (int(s) for s in value["stride"])
            oy, ox = (float(o) for o in value["offset"])
            if [sy, sx] != [float(s) for s in value["stride"]]:
                raise ValueError("strides must be integers")
        except (AssertionError, KeyError, TypeError, ValueError):
            raise ConfigError(f"not a cell geometry: {value!r}") from None
        geometry = cls((sy, sx), (oy, ox))
        wrong_stride = output_stride is not None and (sy, sx) != (output_stride, output_stride)
        if wrong_stride or not all(abs(o) <= 2 * max(sy, sx) for o in (oy, ox)):
            raise ConfigError(f"implausible cell geometry: {value!r}")
        return geometry


def resnet_geometry(output_stride: int) -> CellGeometry:
    """The geometry of every torchvision ResNet trunk (camtool's exports before it was recorded).

    Every ResNet layer that changes the resolution is centre-preserving (7x7 stem with padding
    3, 3x3 max pool and convs with padding 1, 1x1 shortcuts with padding 0), so cell ``i`` is
    centred on pixel ``output_stride * i``; :mod:`camtool.core.receptive` derives the same from
    the layers (a test checks it for every arch).
    """
    return CellGeometry((output_stride, output_stride), (0.0, 0.0))


def interpolation_matrix(
    n_cells: int,
    out_size: int,
    *,
    mode: str = "aligned",
    stride: float = 1.0,
    offset: float = 0.0,
    in_size: int | None = None,
) -> np.ndarray:
    """The ``(out_size, n_cells)`` float32 linear-interpolation weights along one axis.

    Args:
        n_cells: cells of the map along this axis (>= 1).
        out_size: output pixels along this axis (>= 1).
        mode: ``"aligned"`` or ``"conventional"`` (see the module docstring).
        stride: input pixels between cells (aligned only).
        offset: input pixel coordinate of cell 0 (aligned only).
        in_size: pixels of the model's input along this axis; ``None`` when the output *is*
            the model input (aligned only).

    Returns:
        ``W`` with ``W[j, i]`` the weight of cell ``i`` in output pixel ``j``; rows sum to 1.

    Raises:
        ConfigError: an unknown mode or a size below 1.
    """
    modes = [m.value for m in UpsampleMode]
    if mode not in modes:
        raise ConfigError(f"unknown upsampling {mode!r}; choose {' or '.join(modes)}")
    if n_cells < 1 or out_size < 1 or (in_size is not None and in_size < 1):
        raise ConfigError(f"sizes must be positive: {n_cells} cells to {out_size} pixels")
    j = np.arange(out_size, dtype=np.float64)
    if mode == "conventional":
        # PyTorch's align_corners=False source index, clamped below at 0 (as it does).
        t = np.maximum((j + 0.5) * (n_cells / out_size) - 0.5, 0.0)
    else:
        scale = 1.0 if in_size is None else in_size / out_size
        u = (j + 0.5) * scale - 0.5
        t = (u - offset) / stride
    t = np.clip(t, 0.0, n_cells - 1)
    lo = np.floor(t).astype(np.int64)
    hi = np.minimum(lo + 1, n_cells - 1)
    frac = t - lo
    weights = np.zeros((out_size, n_cells), dtype=np.float64)
    rows = np.arange(out_size)
    np.add.at(weights, (rows, lo), 1.0 - frac)
    np.add.at(weights, (rows, hi), frac)
    return weights.astype(np.float32)
