"""Tests for camtool.core.localize: peak, thresholded boxes, IoU and box rescaling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from camtool.core.localize import (
    EMPTY_BOX,
    BoxXYXY,
    all_boxes_from_map_thresholds,
    box_from_map,
    minmax_normalize,
    peak,
    scale_box,
)
from camtool.errors import ConfigError, InputError


def _blob_map(h: int, w: int, *blobs: tuple[BoxXYXY, float]) -> np.ndarray:
    heat = np.zeros((h, w))
    for box, value in blobs:
        heat[box.y0 : box.y1, box.x0 : box.x1] = value
    return heat


def test_box_area_and_tuple() -> None:
    box = BoxXYXY(1, 2, 4, 7)
    assert box.area() == 15
    assert box.as_tuple() == (1, 2, 4, 7)
    assert BoxXYXY(3, 3, 1, 5).area() == 0


def test_peak_returns_x_then_y() -> None:
    heat = np.zeros((4, 6))
    heat[1, 3] = 2.0
    assert peak(heat) == (3, 1)


def test_peak_tie_takes_first_in_raster_order() -> None:
    heat = np.zeros((3, 3))
    heat[2, 0] = 1.0
    heat[1, 2] = 1.0
    assert peak(heat) == (2, 1)


def test_single_square_blob_gives_exactly_that_square() -> None:
    square = BoxXYXY(3, 2, 7, 6)
    heat = _blob_map(10, 12, (square, 1.0))
    assert box_from_map(heat) == square


def test_the_larger_of_two_blobs_is_taken() -> None:
    small = BoxXYXY(0, 0, 2, 2)
    large = BoxXYXY(5, 5, 9, 8)
    heat = _blob_map(10, 10, (small, 1.0), (large, 0.9))
    assert box_from_map(heat) == large


def test_diagonal_neighbours_are_connected() -> None:
    heat = np.zeros((6, 6))
    heat[1, 1] = heat[2, 2] = heat[3, 3] = 1.0  # one 8-connected region of 3 pixels
    heat[0, 5] = heat[1, 5] = 1.0  # a 4-connected region of 2 pixels
    assert box_from_map(heat) == BoxXYXY(1, 1, 4, 4)


def test_threshold_is_relative_to_the_min_max_normalised_map() -> None:
    core = BoxXYXY(4, 4, 6, 6)
    halo = BoxXYXY(2, 2, 8, 8)
    heat = _blob_map(10, 10, (halo, 0.25), (core, 1.0))
    assert box_from_map(heat, 0.2) == halo
    assert box_from_map(heat, 0.3) == core
    # Scale and offset do not matter: thresholds apply after min-max normalisation.
    assert box_from_map(heat * 7.0 + 100.0, 0.2) == halo
    assert box_from_map(heat * 7.0 + 100.0, 0.3) == core
    # A pixel exactly at the threshold is not foreground (strictly greater).
    assert box_from_map(heat, 0.25) == core


def test_constant_map_and_full_threshold_give_empty_box() -> None:
    assert box_from_map(np.full((5, 5), 3.0)) == EMPTY_BOX
    assert box_from_map(_blob_map(5, 5, (BoxXYXY(1, 1, 3, 3), 1.0)), 1.0) == EMPTY_BOX


def test_minmax_normalize() -> None:
    out = minmax_normalize(np.array([[2.0, 4.0], [6.0, 10.0]]))
    np.testing.assert_allclose(out, [[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_array_equal(minmax_normalize(np.ones((2, 2))), np.zeros((2, 2)))


def test_one_flatness_rule_for_boxes_and_heatmaps() -> None:
    """A map that varies by float rounding only is flat for the box finder as for ``heatmap``
    (what cam, batch-cam and eval draw): no box from noise, and no random pattern either."""
    from camtool.core.maps import heatmap

    noisy = np.full((4, 4), 3.0, dtype=np.float32)
    noisy[1, 2] = np.nextafter(np.float32(3.0), np.float32(4.0))
    np.testing.assert_array_equal(minmax_normalize(noisy), np.zeros((4, 4)))
    assert box_from_map(noisy) == EMPTY_BOX
    assert not heatmap(noisy, (8, 8), mode="conventional").any()
    real = noisy.copy()
    real[1, 2] = 3.5
    assert box_from_map(real) != EMPTY_BOX
    assert heatmap(real, (8, 8), mode="conventional").max() == pytest.approx(1.0)
    assert minmax_normalize(real).dtype == np.float32


def test_heatmap_refuses_a_map_with_nan() -> None:
    from camtool.core.maps import heatmap

    bad = np.ones((3, 3), dtype=np.float32)
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        heatmap(bad, (6, 6), mode="conventional")


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_minmax_normalize_refuses_non_finite_values(bad_value: float) -> None:
    bad = np.ones((3, 3), dtype=np.float32)
    bad[1, 2] = bad_value  # min and max alone must catch it: no separate isfinite pass
    with pytest.raises(InputError, match="NaN or infinite"):
        minmax_normalize(bad)


def test_sweep_matches_single_threshold_calls() -> None:
    rng = np.random.default_rng(0)
    heat = np.kron(
        rng.random((7, 7)), np.ones((4, 4))
    )  # blocky, so that many thresholds share a mask
    thresholds = np.array([0.9, 0.0, 0.35, 0.36, 0.5, 0.99, 1.0, 0.2])
    expected = [box_from_map(heat, float(t)) for t in thresholds]
    largest_from_all = all_boxes_from_map_thresholds(heat, thresholds)
    assert len(largest_from_all) == len(thresholds)
    for boxes, single in zip(largest_from_all, expected, strict=True):
        if single == EMPTY_BOX:
            assert boxes == []
        else:
            assert single in boxes


def test_sweep_matches_a_direct_labelling_of_each_mask() -> None:
    rng = np.random.default_rng(1)
    heat = np.kron(rng.random((6, 5)), np.ones((3, 4))) ** 3
    thresholds = np.arange(0, 1, 0.05)[::-1]
    norm = (heat - heat.min()) / (heat.max() - heat.min())
    sweep = all_boxes_from_map_thresholds(heat, thresholds)
    for thr, boxes in zip(thresholds, sweep, strict=True):
        labels, _ = ndimage.label(norm > thr, structure=np.ones((3, 3)))
        expected = {
            BoxXYXY(c.start, r.start, c.stop, r.stop) for r, c in ndimage.find_objects(labels)
        }
        assert set(boxes) == expected
        assert len(boxes) == len(expected)


def test_all_boxes_lists_every_component() -> None:
    a = BoxXYXY(0, 0, 2, 2)
    b = BoxXYXY(5, 5, 9, 8)
    heat = _blob_map(10, 10, (a, 1.0), (b, 0.5))
    at_low, at_high, at_top = all_boxes_from_map_thresholds(heat, [0.1, 0.6, 1.0])
    assert sorted(at_low, key=BoxXYXY.as_tuple) == [a, b]
    assert at_high == [a]
    assert at_top == []


def test_bad_maps_and_thresholds_are_rejected() -> None:
    with pytest.raises(InputError):
        box_from_map(np.zeros(5))
    with pytest.raises(InputError):
        box_from_map(np.array([[0.0, np.nan]]))
    with pytest.raises(InputError):
        peak(np.zeros((0, 3)))
    with pytest.raises(ConfigError):
        box_from_map(np.zeros((3, 3)), 1.5)
    with pytest.raises(ConfigError):
        all_boxes_from_map_thresholds(np.zeros((3, 3)), np.array([]))


def test_scale_box_between_map_and_image_resolution() -> None:
    box = BoxXYXY(1, 2, 3, 7)
    up = scale_box(box, (7, 7), (224, 224))
    assert up == BoxXYXY(32, 64, 96, 224)
    assert scale_box(up, (224, 224), (7, 7)) == box
    # Height and width scale separately: (h, w) order.
    assert scale_box(BoxXYXY(2, 2, 4, 4), (4, 8), (8, 4)) == BoxXYXY(1, 4, 2, 8)
    # Rounded to the nearest edge and clipped to the image.
    assert scale_box(BoxXYXY(1, 0, 3, 5), (4, 3), (8, 4)) == BoxXYXY(1, 0, 4, 8)
    with pytest.raises(InputError):
        scale_box(box, (0, 7), (224, 224))
