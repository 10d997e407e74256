"""MaxBoxAccV2 as wsolevaluation computes it, on hand-built maps whose values are worked out."""

from __future__ import annotations

import numpy as np
import pytest

from camtool.core.localize import BoxXYXY
from camtool.evaluation.localization_metrics import (
    WSOL_CAM_THRESHOLDS,
    LocalizationAccumulator,
    box_iou,
    quantize,
    wsol_boxes,
)


def _rows(boxes: np.ndarray) -> list[list[int]]:
    return sorted(boxes.tolist())


def test_reference_unit_cases_are_reproduced() -> None:
    # The reference's own unimodal case (one region, so every contour is "the largest"); the
    # sweep is np.arange(0, 1, 0.2) and each row is that threshold's box.
    scoremap = np.array(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.4, 0.4, 0.4, 0.6],
            [0.0, 0.4, 1.0, 0.8, 0.6],
            [0.0, 0.4, 0.4, 0.4, 0.6],
        ]
    )
    boxes = wsol_boxes(scoremap, np.arange(0, 1, 0.2))
    assert [b.tolist() for b in boxes] == [
        [[1, 1, 4, 3]],
        [[1, 1, 4, 3]],
        [[2, 1, 4, 3]],
        [[2, 2, 4, 3]],
        [[2, 2, 3, 3]],
    ]
    # Nothing above the threshold: the one box (0, 0, 0, 0).
    assert [b.tolist() for b in wsol_boxes(np.zeros((3, 3)), [0.0, 0.5])] == [[[0, 0, 0, 0]]] * 2


def test_holes_give_boxes_of_their_own() -> None:
    # A 7x7 square (rows/cols 1..7 of a 9x9 map) with a 2x2 hole at rows/cols 3..4.
    heat = np.zeros((9, 9))
    heat[1:8, 1:8] = 1.0
    heat[3:5, 3:5] = 0.0
    (boxes,) = wsol_boxes(heat, [0.5])
    # Outer contour: x 1..7 -> (1, 1, 1 + 7, 1 + 7), clipped to 8 = W - 1. The hole's border runs
    # through the pixels 4-adjacent to it, x 2..5 -> (2, 2, 2 + 4, 2 + 4).
    assert _rows(boxes) == [[1, 1, 8, 8], [2, 2, 6, 6]]
    # A gap open to the image edge is background, not a hole.
    heat[3:5, 0:5] = 0.0
    (boxes,) = wsol_boxes(heat, [0.5])
    assert _rows(boxes) == [[1, 1, 8, 8]]


def test_quantisation_to_8_bits_decides_the_foreground() -> None:
    # Normalised 0.501: uint8(0.501 * 255) = 127, and threshold 0.5 is level int(127.5) = 127,
    # so the pixel is NOT above it, though 0.501 > 0.5 on the float map.
    heat = np.array([[0.0, 0.501, 1.0]])
    assert quantize(heat).tolist() == [[0, 127, 255]]
    (boxes,) = wsol_boxes(heat, [0.5])
    assert boxes.tolist() == [[2, 0, 2, 0]]  # x 2 only: (2, 0, min(3, 2), min(1, 0))
    # Thresholds 0.500 and 0.503 select the same level (127 and 128 differ: int(128.265) = 128).
    assert [int(t * 255) for t in (0.5, 0.503)] == [127, 128]


def test_iou_uses_the_inclusive_plus_one_rule() -> None:
    # (0,0)-(1,1) and (1,1)-(2,2) share pixel (1,1): 1 / (4 + 4 - 1).
    iou = box_iou(np.array([[0, 0, 1, 1]]), np.array([[1, 1, 2, 2]]), inclusive=True)
    assert iou[0, 0] == pytest.approx(1 / 7)
    # The empty-map box (0,0,0,0) is one pixel: IoU 1/4 with a 2x2 box in the corner.
    iou = box_iou(np.zeros((1, 4)), np.array([[0, 0, 1, 1]]), inclusive=True)
    assert iou[0, 0] == pytest.approx(0.25)
    # An inverted box has no area; the union stays positive, the intersection is 0.
    assert box_iou(np.array([[5, 5, 3, 3]]), np.array([[0, 0, 1, 1]]), inclusive=True) == 0.0


def test_protocols_differ_exactly_where_the_conventions_do() -> None:
    # The holed square above, ground truth drawn on the hole's border box (2, 2, 6, 6).
    heat = np.zeros((9, 9))
    heat[1:8, 1:8] = 1.0
    heat[3:5, 3:5] = 0.0
    gt = [[BoxXYXY(2, 2, 6, 6)]]
    wsol = LocalizationAccumulator(protocol="wsol")
    wsol.update([heat], [True], gt)
    res = wsol.compute()
    assert res["maxboxacc_by_iou"] == {0.3: 1.0, 0.5: 1.0, 0.7: 1.0}  # the hole's box: IoU 1
    assert res["maxboxacc_v2"] == pytest.approx(1.0)
    assert wsol.thresholds.size == WSOL_CAM_THRESHOLDS.size == 1000
    # camtool: one end-exclusive box (1, 1, 8, 8) vs (2, 2, 6, 6): 16 / 49 = 0.33 < 0.5.
    own = LocalizationAccumulator()
    own.update([heat], [True], gt)
    assert own.compute()["maxboxacc_by_iou"] == {0.3: 1.0, 0.5: 0.0, 0.7: 0.0}
    assert own.compute()["maxboxacc_v2"] == pytest.approx(1 / 3)
