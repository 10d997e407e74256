"""MaxBoxAccV2 exactly as the wsolevaluation reference computes it (Choe et al., CVPR 2020).

camtool's own protocol (:mod:`camtool.core.localize`) works on the float map with end-exclusive
boxes. The reference's ``BoxEvaluator`` (its ``evaluation.py``, with ``box_v2_metric``, i.e.
``multi_contour_eval``) differs in four conventions, all reproduced here:

1. **8-bit maps.** The min-max normalised map ``m`` (float64; a constant map is all zeros) is
   quantised as ``q = uint8(m * 255)`` (truncation). At CAM threshold ``t`` the foreground is
   ``q > int(t * max(q))`` (OpenCV's ``THRESH_BINARY``), so thresholds act on 255 levels.
2. **Every contour, holes included.** ``cv2.findContours(RETR_TREE)`` returns the outer border of
   each 8-connected foreground region *and* the border of each hole (a 4-connected background
   region not reaching the image edge). A hole's border runs through the foreground pixels
   4-adjacent to it, so its bounding box is the hole's grown by one pixel on every side.
3. **Box corners.** Each contour's ``boundingRect`` ``(x, y, w, h)`` becomes
   ``(x, y, min(x + w, W - 1), min(y + h, H - 1))``: the end is exclusive, then clipped to the
   last pixel. With no foreground the one box is ``(0, 0, 0, 0)``.
4. **IoU with the inclusive "+1" rule.** Areas are ``(x1 - x0 + 1) * (y1 - y0 + 1)`` and the
   intersection likewise, i.e. both boxes are read as inclusive of their end; ground-truth boxes
   are used with their numbers as given (camtool's ``x1, y1``, as the reference uses those of
   its ``localization.txt``). A non-positive union gives IoU 0.

The threshold sweep is the reference's default ``np.arange(0, 1, 0.001)``; the reported accuracy
at each IoU level is the maximum over the sweep, and MaxBoxAccV2 their mean over
``{0.3, 0.5, 0.7}``. An image counts at a threshold when its best box (over all contours) has
IoU >= the level with any ground-truth box.

OpenCV is not needed: regions are labelled with :func:`scipy.ndimage.label`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from camtool.core.localize import minmax_normalize

__all__ = ["WSOL_CAM_THRESHOLDS", "box_iou", "quantize", "wsol_boxes"]

WSOL_CAM_THRESHOLDS: np.ndarray = np.arange(0, 1, 0.001)
"""The reference's default sweep (``cam_curve_interval = 0.001``)."""

_EIGHT = np.ones((3, 3), dtype=bool)
_FOUR = ndimage.generate_binary_structure(2, 1)
_NO_BOX = np.zeros((1, 4), dtype=np.int64)


def quantize(heatmap: np.ndarray) -> np.ndarray:
    """The reference's 8-bit score map: ``uint8(m * 255)`` of the min-max normalised map ``m``
    (float64, :func:`camtool.core.localize.minmax_normalize`).

    Raises:
        InputError: not a finite, non-empty 2-D map.
    """
    return (minmax_normalize(heatmap) * 255).astype(np.uint8)


def _boxes_of_mask(mask: np.ndarray) -> np.ndarray:
    """Reference-convention boxes ``(k, 4)`` of every contour of a foreground mask."""
    height, width = mask.shape
    found: list[tuple[int, int, int, int]] = []  # inclusive (x0, y0, x1, y1)
    labels, count = ndimage.label(mask, structure=_EIGHT)
    for rows, cols in ndimage.find_objects(labels)[:count]:
        found.append((cols.start, rows.start, cols.stop - 1, rows.stop - 1))
    holes, n_holes = ndimage.label(~mask, structure=_FOUR)
    for rows, cols in ndimage.find_objects(holes)[:n_holes]:
        if rows.start == 0 or cols.start == 0 or rows.stop == height or cols.stop == width:
            continue  # open to the image edge: background, not a hole
        found.append((cols.start - 1, rows.start - 1, cols.stop, rows.stop))
    if not found:
        return _NO_BOX
    boxes = np.asarray(found, dtype=np.int64)
    boxes[:, 2] = np.minimum(boxes[:, 2] + 1, width - 1)
    boxes[:, 3] = np.minimum(boxes[:, 3] + 1, height - 1)
    return boxes


def wsol_boxes(heatmap: np.ndarray, thresholds: Sequence[float] | np.ndarray) -> list[np.ndarray]:
    """The boxes of every contour at each CAM threshold, as the reference computes them.

    Args:
        heatmap: a 2-D map indexed ``[y, x]``, any scale (normalised and quantised here).
        thresholds: CAM thresholds in [0, 1).

    Returns:
        For each threshold, an int64 array ``(k, 4)`` of ``(x0, y0, x1, y1)`` boxes (``k >= 1``;
        ``[[0, 0, 0, 0]]`` when nothing is above the threshold). Thresholds selecting the same
        8-bit level share one labelling.

    Raises:
        InputError: not a finite, non-empty 2-D map.
    """
    q = quantize(heatmap)
    top = int(q.max())
    levels = [int(float(t) * top) for t in thresholds]
    by_level = {level: _boxes_of_mask(q > level) for level in set(levels)}
    return [by_level[level] for level in levels]


def box_iou(boxes: np.ndarray, gt: np.ndarray, *, inclusive: bool = False) -> np.ndarray:
    """IoU of each box with each ground-truth box; an inverted box has no area.

    Args:
        boxes: ``(k, 4)`` ``(x0, y0, x1, y1)``.
        gt: ``(g, 4)`` the same.
        inclusive: the reference's "+1" rule (both ends inside the box); else camtool's
            end-exclusive pixel areas.

    Returns:
        float64 ``(k, g)``; 0 where the union is not positive.
    """
    one = 1.0 if inclusive else 0.0
    a = np.asarray(boxes, dtype=np.float64)[:, None, :]
    b = np.asarray(gt, dtype=np.float64)[None, :, :]

    def side(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return np.maximum(0.0, hi - lo + one)

    inter = side(np.maximum(a[..., 0], b[..., 0]), np.minimum(a[..., 2], b[..., 2])) * side(
        np.maximum(a[..., 1], b[..., 1]), np.minimum(a[..., 3], b[..., 3])
    )
    area_a = side(a[..., 0], a[..., 2]) * side(a[..., 1], a[..., 3])
    area_b = side(b[..., 0], b[..., 2]) * side(b[..., 1], b[..., 3])
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
