"""Boxes from class activation maps: peak, thresholded largest region, rescaling.

Maps are 2-D arrays indexed ``[y, x]``; boxes are :class:`BoxXYXY` in pixels, end exclusive.
Thresholds apply to the min-max normalised map (:func:`minmax_normalize`, every command's one
normalisation): a pixel is foreground when strictly greater (as in Choe et al. 2020's
wsolevaluation). Regions are 8-connected; the largest has the most pixels, the first in raster
order on a tie.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from camtool.errors import ConfigError, InputError

__all__ = [
    "CAM_THRESHOLD",
    "EMPTY_BOX",
    "FLAT_SPAN",
    "BoxXYXY",
    "all_boxes_from_map_thresholds",
    "box_from_map",
    "minmax_normalize",
    "peak",
    "scale_box",
]

_STRUCTURE_8 = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class BoxXYXY:
    """An axis-aligned box in pixels, end exclusive: ``x0 <= x < x1``, ``y0 <= y < y1``."""

    x0: int
    y0: int
    x1: int
    y1: int

    def area(self) -> int:
        """Number of pixels covered (0 for an empty or inverted box)."""
        return max(0, self.x1 - self.x0) * max(0, self.y1 - self.y0)

    def as_tuple(self) -> tuple[int, int, int, int]:
        """The box as ``(x0, y0, x1, y1)``."""
        return (self.x0, self.y0, self.x1, self.y1)


EMPTY_BOX = BoxXYXY(0, 0, 0, 0)

CAM_THRESHOLD = 0.2
"""The CAM paper's box threshold: 20% of the map's maximum (Zhou et al., CVPR 2016)."""

FLAT_SPAN = 1e-5
"""A map whose range is at most this fraction of its largest magnitude is flat: upsampling a
constant map adds float32 rounding (~1e-7), which normalising would blow up into noise."""


def _as_map(heatmap: np.ndarray) -> np.ndarray:
    """``heatmap`` as a finite 2-D float array (float32 stays float32, else float64), or
    InputError."""
    arr = np.asarray(heatmap)
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(f"a heatmap must be a non-empty 2-D array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"a heatmap must hold real numbers, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise InputError("the heatmap contains NaN or infinite values")
    return arr.astype(np.float32 if arr.dtype == np.float32 else np.float64, copy=False)


def _check_thresholds(thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    """Return ``thresholds`` as a 1-D float array within [0, 1], or raise ConfigError."""
    arr = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ConfigError("CAM thresholds must be a non-empty list of numbers")
    if not np.isfinite(arr).all() or (arr < 0).any() or (arr > 1).any():
        raise ConfigError("CAM thresholds must lie between 0 and 1")
    return arr


def minmax_normalize(heatmap: np.ndarray) -> np.ndarray:
    """Min-max normalise a 2-D map of finite real numbers to [0, 1]: ``(h - min) / (max - min)``.

    Returns:
        float32 for a float32 map, else float64; all zeros for a flat map (range zero or at
        most :data:`FLAT_SPAN` of its largest magnitude).

    Raises:
        InputError: if the map is not 2-D, is empty or holds non-finite values.
    """
    arr = _as_map(heatmap)
    low, high = float(arr.min()), float(arr.max())
    span = high - low
    if span == 0 or span <= FLAT_SPAN * max(abs(high), abs(low)):
        return np.zeros_like(arr)
    return (arr - low) / arr.dtype.type(span)


def peak(heatmap: np.ndarray) -> tuple[int, int] | None:
    """``(x, y)`` of the maximum of a 2-D map indexed ``[y, x]``, the first in raster order on a
    tie; ``None`` for a constant map, which has no peak.

    Raises:
        InputError: if the map is not 2-D, is empty or holds non-finite values.
    """
    arr = _as_map(heatmap)
    if arr.max() == arr.min():
        return None
    y, x = np.unravel_index(int(np.argmax(arr)), arr.shape)
    return int(x), int(y)


def _components(mask: np.ndarray, offset: tuple[int, int], largest_only: bool) -> list[BoxXYXY]:
    """Boxes of ``mask``'s 8-connected regions (or its largest), shifted by ``offset`` (y, x)."""
    from scipy import ndimage  # here, not at the top: importing it takes about 0.1 s

    labels, count = ndimage.label(mask, structure=_STRUCTURE_8)
    if count == 0:
        return []
    oy, ox = offset
    # Labels are consecutive, so find_objects has no None entries and aligns with label - 1.
    slices = ndimage.find_objects(labels)
    if largest_only:
        sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
        slices = [slices[int(np.argmax(sizes))]]
    return [
        BoxXYXY(int(c.start) + ox, int(r.start) + oy, int(c.stop) + ox, int(r.stop) + oy)
        for r, c in slices
    ]


def box_from_map(heatmap: np.ndarray, threshold: float = CAM_THRESHOLD) -> BoxXYXY:
    """Box around the largest region above ``threshold`` (in [0, 1]) of the normalised map.

    The CAM paper's protocol (Zhou et al. 2016); ``EMPTY_BOX`` if no pixel is above it.

    Raises:
        InputError: if the map is not a finite 2-D array.
        ConfigError: if ``threshold`` is outside [0, 1].
    """
    (thr,) = _check_thresholds(np.asarray([threshold]))
    boxes = _components(minmax_normalize(heatmap) > thr, (0, 0), largest_only=True)
    return boxes[0] if boxes else EMPTY_BOX


def all_boxes_from_map_thresholds(
    heatmap: np.ndarray, thresholds: Sequence[float] | np.ndarray
) -> list[list[BoxXYXY]]:
    """For each threshold in [0, 1], in the order given, the boxes of *every* region above it
    (for MaxBoxAccV2).

    Raises:
        InputError: if the map is not a finite 2-D array.
        ConfigError: if a threshold is outside [0, 1] or none is given.
    """
    thr = _check_thresholds(thresholds)
    normalized = minmax_normalize(heatmap)
    # Each distinct mask (keyed by how many pixels exceed the threshold) is labelled once, inside
    # the bounding box of the previous, lower threshold's mask, which holds it.
    flat_sorted = np.sort(normalized, axis=None)
    n_above = flat_sorted.size - np.searchsorted(flat_sorted, thr, side="right")
    found: dict[int, list[BoxXYXY]] = {0: []}
    y0, x0, y1, x1 = 0, 0, normalized.shape[0], normalized.shape[1]
    for i in np.argsort(thr, kind="stable"):
        key = int(n_above[i])
        if key in found:
            continue
        mask = normalized[y0:y1, x0:x1] > thr[i]
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        mask = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        y0, x0 = y0 + int(rows[0]), x0 + int(cols[0])
        y1, x1 = y0 + mask.shape[0], x0 + mask.shape[1]
        found[key] = _components(mask, (y0, x0), largest_only=False)
    return [list(found[int(n)]) for n in n_above]


def scale_box(box: BoxXYXY, from_hw: tuple[int, int], to_hw: tuple[int, int]) -> BoxXYXY:
    """Rescale a box from an image of ``from_hw`` = (H, W) to one of ``to_hw``.

    Each edge is scaled, rounded to the nearest pixel edge (halves up) and clipped to the new
    image, so a box at 7x7 map resolution maps exactly onto a 224x224 image and back.

    Raises:
        InputError: if a size is not positive.
    """
    fh, fw = from_hw
    th, tw = to_hw
    if min(fh, fw, th, tw) <= 0:
        raise InputError(f"image sizes must be positive, got {from_hw} and {to_hw}")

    def edge(v: int, to: int, start: int) -> int:
        return min(max(math.floor(v * (to / start) + 0.5), 0), to)  # halves round up

    x0, y0 = edge(box.x0, tw, fw), edge(box.y0, th, fh)
    x1, y1 = max(edge(box.x1, tw, fw), x0), max(edge(box.y1, th, fh), y0)
    return BoxXYXY(x0, y0, x1, y1)
