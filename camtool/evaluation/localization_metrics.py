"""Box localization metrics of ``camtool eval`` (accuracies are fractions in [0, 1]).

CAM paper protocol (Zhou et al., CVPR 2016): the box of the largest 8-connected region above 20%
of the map's maximum must reach IoU 0.5 with a ground-truth box (GT-known; top-1 also needs the
class right). MaxBoxAccV2 (Choe et al., CVPR 2020): the best box of any region, the hit rate
maximised over a CAM threshold sweep at each IoU in {0.3, 0.5, 0.7}, then averaged; ``protocol``
``"wsol"`` follows the wsolevaluation reference exactly (:func:`wsol_boxes`, :func:`box_iou`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import numpy as np
from scipy import ndimage
from torch import Tensor

from camtool.choices import LocalizationProtocol
from camtool.core.localize import (
    CAM_THRESHOLD,
    BoxXYXY,
    all_boxes_from_map_thresholds,
    box_from_map,
    minmax_normalize,
)
from camtool.errors import CamtoolError, ConfigError, InputError
from camtool.evaluation.metrics import to_numpy

__all__ = [
    "DEFAULT_CAM_THRESHOLDS",
    "DEFAULT_IOU_THRESHOLDS",
    "LOC_IOU",
    "PROTOCOLS",
    "WSOL_CAM_THRESHOLDS",
    "LocalizationAccumulator",
    "LocalizationResults",
    "box_iou",
    "centre_box_baseline",
    "quantize",
    "wsol_boxes",
]

DEFAULT_CAM_THRESHOLDS: np.ndarray = np.arange(100) / 100.0  # camtool's sweep
WSOL_CAM_THRESHOLDS: np.ndarray = np.arange(0, 1, 0.001)  # the reference's cam_curve_interval
DEFAULT_IOU_THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7)
LOC_IOU = 0.5  # the CAM paper protocol's IoU
PROTOCOLS: tuple[str, ...] = tuple(protocol.value for protocol in LocalizationProtocol)

_EIGHT = np.ones((3, 3), dtype=bool)
_FOUR = ndimage.generate_binary_structure(2, 1)
_NO_BOX = np.zeros((1, 4), dtype=np.int64)


def quantize(heatmap: np.ndarray) -> np.ndarray:
    """The reference's ``uint8(m * 255)`` of the min-max normalised map ``m``.

    Raises:
        InputError: not a finite, non-empty 2-D map.
    """
    return (minmax_normalize(heatmap) * 255).astype(np.uint8)


def _boxes_of_mask(mask: np.ndarray) -> np.ndarray:
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
    """The reference's boxes (``box_v2_metric``) of every contour of a 2-D ``[y, x]`` map at
    each CAM threshold ``t`` in [0, 1).

    Foreground is ``q > int(t * max(q))``, ``q`` the :func:`quantize`-d map. Contours
    (``cv2.findContours(RETR_TREE)``) are each 8-connected region and each hole (4-connected
    background off the edge, box grown one pixel); ``boundingRect`` ``(x, y, w, h)`` becomes
    ``(x, y, min(x + w, W - 1), min(y + h, H - 1))``.

    Returns:
        Per threshold, an int64 ``(k, 4)`` array of ``(x0, y0, x1, y1)`` (``k >= 1``;
        ``[[0, 0, 0, 0]]`` when nothing is above the threshold).

    Raises:
        InputError: not a finite, non-empty 2-D map.
    """
    q = quantize(heatmap)
    top = int(q.max())
    levels = [int(float(t) * top) for t in thresholds]
    by_level = {level: _boxes_of_mask(q > level) for level in set(levels)}
    return [by_level[level] for level in levels]


def box_iou(boxes: np.ndarray, gt: np.ndarray, *, inclusive: bool = False) -> np.ndarray:
    """Float64 ``(k, g)`` IoU of ``(k, 4)`` boxes with ``(g, 4)`` boxes, ``(x0, y0, x1, y1)``
    end-exclusive (``inclusive``: the reference's "+1" rule); 0 where the union is empty."""
    one = 1.0 if inclusive else 0.0
    a = np.asarray(boxes, dtype=np.float64)[:, None, :]
    b = np.asarray(gt, dtype=np.float64)[None, :, :]

    def area(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return np.prod(np.maximum(0.0, hi - lo + one), axis=-1)

    inter = area(np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:]))
    union = area(a[..., :2], a[..., 2:]) + area(b[..., :2], b[..., 2:]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _best_iou(boxes: Sequence[BoxXYXY], gt: np.ndarray) -> float:
    if not boxes:
        return 0.0
    return float(box_iou(np.asarray([b.as_tuple() for b in boxes]), gt).max())


class LocalizationResults(TypedDict):
    """:meth:`LocalizationAccumulator.compute`'s results; ``maxboxacc_v2`` averages ``_by_iou``."""

    top1_loc: float
    gt_known_loc: float
    maxboxacc_v2: float
    maxboxacc_by_iou: dict[float, float]
    best_threshold_by_iou: dict[float, float]
    n_images: int
    centre_box_baseline: dict[str, float]


class LocalizationAccumulator:
    """The module's metrics over batches: :meth:`update`, then :meth:`compute`.

    ``thresholds``: the MaxBoxAccV2 sweep in [0, 1] (``None``: the protocol's), at each of
    :data:`DEFAULT_IOU_THRESHOLDS`; the CAM paper protocol uses ``CAM_THRESHOLD`` and
    :data:`LOC_IOU`; ``protocol``: ``"camtool"`` or ``"wsol"``.

    Raises:
        ConfigError: if a threshold is outside [0, 1], the list is empty or the protocol unknown.
    """

    iou_thresholds: tuple[float, ...] = DEFAULT_IOU_THRESHOLDS
    cam_threshold: float = CAM_THRESHOLD
    loc_iou: float = LOC_IOU

    def __init__(
        self, thresholds: Sequence[float] | np.ndarray | None = None, protocol: str = "camtool"
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {protocol!r}; choose {' or '.join(PROTOCOLS)}")
        if thresholds is None:
            thresholds = WSOL_CAM_THRESHOLDS if protocol == "wsol" else DEFAULT_CAM_THRESHOLDS
        self.protocol = protocol
        thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        if thr.size == 0 or not np.isfinite(thr).all():
            raise ConfigError("CAM thresholds must be a non-empty list of numbers")
        if (thr < 0).any() or (thr > 1).any():
            raise ConfigError("CAM thresholds must lie between 0 and 1")
        self.thresholds = thr
        self._correct = np.zeros((len(self.iou_thresholds), thr.size), dtype=np.int64)
        self._gt_known = self._top1 = self._n = 0
        self._gt: list[np.ndarray] = []  # for the centre baseline
        self._sizes: list[tuple[int, int]] = []

    def update(
        self,
        heatmaps: np.ndarray | Sequence[np.ndarray],
        pred_correct: Tensor | np.ndarray | Sequence[bool],
        gt_boxes: Sequence[Sequence[BoxXYXY]],
    ) -> None:
        """Add ``[N, H, W]`` maps (or N 2-D maps) of the true class in the boxes' pixels, ``[N]``
        flags of a right top-1 class and each image's ground-truth boxes (at least one).

        Raises:
            InputError: if the lengths differ, an image has no box or a map is not 2-D/finite.
        """
        correct = to_numpy(pred_correct).astype(bool).reshape(-1)
        levels = np.asarray(self.iou_thresholds)[:, None]
        n = len(heatmaps)
        if correct.size != n or len(gt_boxes) != n:
            raise InputError(
                f"got {n} maps, {correct.size} correctness flags and {len(gt_boxes)} box lists"
            )
        for heatmap, ok, boxes in zip(heatmaps, correct, gt_boxes, strict=True):
            if len(boxes) == 0:
                raise InputError("every image needs at least one ground-truth box")
            gt = np.asarray([b.as_tuple() for b in boxes], dtype=np.float64)
            known = _best_iou([box_from_map(heatmap, self.cam_threshold)], gt) >= self.loc_iou
            self._gt_known += int(known)
            self._top1 += int(known and bool(ok))
            self._correct += self._sweep_best_iou(heatmap, gt)[None, :] >= levels
            self._gt.append(gt)
            self._sizes.append((int(heatmap.shape[0]), int(heatmap.shape[1])))
            self._n += 1

    def _sweep_best_iou(self, heatmap: np.ndarray, gt: np.ndarray) -> np.ndarray:
        if self.protocol == "wsol":
            boxes = wsol_boxes(heatmap, self.thresholds)
            return np.asarray([box_iou(b, gt, inclusive=True).max() for b in boxes])
        sweep = all_boxes_from_map_thresholds(heatmap, self.thresholds)
        return np.asarray([_best_iou(bxs, gt) for bxs in sweep])

    @property
    def n_images(self) -> int:
        """Number of images added so far."""
        return self._n

    def box_accuracy_curves(self) -> dict[float, np.ndarray]:
        """``{IoU level: box accuracy at each CAM threshold}``; CamtoolError without images."""
        if self._n == 0:
            raise CamtoolError("no images were given to the localization metrics")
        return {d: self._correct[i] / self._n for i, d in enumerate(self.iou_thresholds)}

    def compute(self) -> LocalizationResults:
        """The :class:`LocalizationResults` so far; CamtoolError if no image was added."""
        curves = self.box_accuracy_curves()
        by_iou = {d: float(c.max()) for d, c in curves.items()}
        best_thr = {d: float(self.thresholds[int(np.argmax(c))]) for d, c in curves.items()}
        return LocalizationResults(
            top1_loc=self._top1 / self._n,
            gt_known_loc=self._gt_known / self._n,
            maxboxacc_v2=float(np.mean(list(by_iou.values()))),
            maxboxacc_by_iou=by_iou,
            best_threshold_by_iou=best_thr,
            n_images=self._n,
            centre_box_baseline=centre_box_baseline(
                self._gt, self._sizes, self.iou_thresholds, self.loc_iou
            ),
        )


def centre_box_baseline(
    gt_boxes: Sequence[np.ndarray],
    image_sizes: Sequence[tuple[int, int]],
    iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
    loc_iou: float = LOC_IOU,
) -> dict[str, float]:
    """How well one fixed box localizes, looking at no image: what a map must beat.

    The box has the ground-truth boxes' mean relative width and height and sits at each image's
    centre (the centre baseline of Choe et al., CVPR 2020).

    Args:
        gt_boxes: per image, an ``(n >= 1, 4)`` array of ``x0, y0, x1, y1`` pixels, end exclusive.
        image_sizes: per image, its ``(height, width)``.

    Returns:
        ``{"gt_known_loc", "maxboxacc_v2"}`` in [0, 1]: the fraction of images whose best
        (camtool) IoU with the box reaches ``loc_iou``, and that averaged over ``iou_thresholds``.

    Raises:
        ConfigError: no images, lengths that differ, no IoU levels, an image without boxes or
            pixels, or a box that is not four finite numbers with ``x0 < x1`` and ``y0 < y1``.
    """
    boxes = [np.asarray(found, dtype=np.float64) for found in gt_boxes]
    sizes = [(int(hw[0]), int(hw[1])) for hw in image_sizes]
    if not boxes or len(boxes) != len(sizes):
        raise ConfigError("the centre-box baseline needs one size per image, and some images")
    for i, (g, (h, w)) in enumerate(zip(boxes, sizes, strict=True)):
        if h < 1 or w < 1:
            raise ConfigError(f"image {i}: size {h}x{w} has no pixels")
        if g.ndim != 2 or g.shape[0] < 1 or g.shape[1] != 4:
            raise ConfigError(f"image {i}: boxes must be an (n >= 1, 4) array, got {g.shape}")
        if not np.isfinite(g).all() or (g[:, 2] <= g[:, 0]).any() or (g[:, 3] <= g[:, 1]).any():
            raise ConfigError(f"image {i}: every box needs finite x0 < x1 and y0 < y1")
    if not iou_thresholds:
        raise ConfigError("the centre-box baseline needs at least one IoU level")
    whs = [np.array([w, h], dtype=np.float64) for h, w in sizes]
    rel = np.concatenate(
        [(g[:, 2:] - g[:, :2]) / wh for g, wh in zip(boxes, whs, strict=True)]
    ).mean(axis=0)
    scores = np.asarray(
        [  # the centre box, each end rounded half to even
            box_iou(np.rint(np.concatenate([wh - rel * wh, wh + rel * wh]) / 2)[None], g).max()
            for g, wh in zip(boxes, whs, strict=True)
        ]
    )
    return {
        "gt_known_loc": float(np.mean(scores >= loc_iou)),
        "maxboxacc_v2": float(np.mean([np.mean(scores >= d) for d in iou_thresholds])),
    }
