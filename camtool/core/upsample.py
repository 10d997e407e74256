"""Turning a raw class activation map into pixels: each feature cell at its receptive-field centre.

Cell ``i`` (along one axis) is centred on input pixel ``offset + stride * i``
(:mod:`camtool.core.receptive`); coordinates are pixel centres. Upsampling interpolates linearly
between the two nearest cells (:func:`interpolation_matrix`). This module imports numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from camtool.choices import UpsampleMode
from camtool.errors import ConfigError

__all__ = ["CellGeometry", "interpolation_matrix", "resnet_geometry"]


@dataclass(frozen=True)
class CellGeometry:
    """Where the cells of a feature map sit on the model's input, per axis ``(y, x)``.

    Attributes:
        stride: input pixels between neighbouring cells (the network's output stride).
        offset: input pixel coordinate (pixel centres) of cell 0's receptive-field centre.
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

        The strides must be ``output_stride`` (``None``: unknown) and each offset within two
        strides of the origin (every accepted family's is; Inception v3's is 37 px at stride 32).

        Raises:
            ConfigError: not two integer strides and two finite offsets, or implausible ones.
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
    """The geometry of every torchvision ResNet trunk: cell ``i`` centred on pixel
    ``output_stride * i``, as all its resolution-changing layers preserve centres."""
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

    ``W[j, i]`` is the weight of cell ``i`` in output pixel ``j``; rows sum to 1, and maps
    become ``Wy @ cam @ Wx.T``. ``mode`` (``cam.upsample``) places output pixel ``j`` at:

    * ``"aligned"``: input coordinate ``u = (j + 0.5) * in_size / out_size - 0.5`` (PIL's and
      ``align_corners=False``'s pixel centres; ``in_size`` ``None``: the output is the model
      input), i.e. cell ``(u - offset) / stride``; beyond the end cells the map is constant.
    * ``"conventional"``: ``F.interpolate(..., mode="bilinear", align_corners=False)``'s cell
      ``(j + 0.5) * n_cells / out_size - 0.5`` whatever the network (a ResNet's cells land
      half a cell off their centres); kept to compare with published numbers.

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
