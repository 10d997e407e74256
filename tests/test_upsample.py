"""Upsampling raw maps to pixels: aligned placement, conventional bilinear, original-size maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from camtool.core.maps import upsample_maps as upsample
from camtool.core.upsample import CellGeometry, interpolation_matrix, resnet_geometry
from camtool.errors import ConfigError


def _hot(h: int, w: int, y: int, x: int) -> np.ndarray:
    cam = np.zeros((h, w), dtype=np.float32)
    cam[y, x] = 1.0
    return cam


@pytest.mark.parametrize("stride", [16, 32])
@pytest.mark.parametrize("size", [(224, 224), (200, 232), (97, 150)])
def test_hot_cell_peaks_at_stride_times_index(stride: int, size: tuple[int, int]) -> None:
    # A ResNet on an H x W input has ceil(H / stride) cells; sizes here are not all multiples.
    h, w = (-(-size[0] // stride), -(-size[1] // stride))
    geometry = resnet_geometry(stride)
    for iy, ix in [(1, 2), (h - 2, w - 2), (h // 2, 1)]:
        up = upsample(_hot(h, w, iy, ix), size, geometry=geometry)
        py, px = np.unravel_index(int(np.argmax(up)), up.shape)
        assert (py, px) == (stride * iy, stride * ix)
        assert up[py, px] == pytest.approx(1.0)


@pytest.mark.parametrize("stride", [16, 32])
def test_hot_cell_lands_on_its_place_in_the_original_image(stride: int) -> None:
    # The model saw a 160 x 240 copy of a 500 x 750 photo: cell i is at input pixel stride*i,
    # i.e. at original pixel (stride*i + 0.5) * 500/160 - 0.5.
    original, model_input = (500, 750), (160, 240)
    h, w = model_input[0] // stride, model_input[1] // stride
    iy, ix = h // 2, w - 2
    up = upsample(
        _hot(h, w, iy, ix), original, geometry=resnet_geometry(stride), input_hw=model_input
    )
    py, px = np.unravel_index(int(np.argmax(up)), up.shape)
    scale = original[0] / model_input[0]
    assert abs(py - ((stride * iy + 0.5) * scale - 0.5)) <= 1.0
    assert abs(px - ((stride * ix + 0.5) * scale - 0.5)) <= 1.0


def test_offset_moves_every_cell() -> None:
    geometry = CellGeometry((32, 32), (14.0, 14.0))  # e.g. DenseNet-121
    up = upsample(_hot(5, 5, 2, 3), (160, 160), geometry=geometry)
    assert np.unravel_index(int(np.argmax(up)), up.shape) == (14 + 64, 14 + 96)


def test_aligned_interpolates_linearly_and_clamps_at_the_borders() -> None:
    wx = interpolation_matrix(3, 80, stride=32, offset=0.0)
    cam_row = np.array([1.0, 3.0, 7.0], dtype=np.float32)
    line = wx @ cam_row
    assert line[0] == pytest.approx(1.0)  # cell 0 at pixel 0
    assert line[16] == pytest.approx(2.0)  # half way between cells 0 and 1
    assert line[32] == pytest.approx(3.0)
    assert line[48] == pytest.approx(5.0)
    assert np.allclose(line[64:], 7.0)  # beyond the last cell: held constant
    assert np.allclose(wx.sum(axis=1), 1.0)


@pytest.mark.parametrize("cells, out", [((4, 4), (64, 64)), ((2, 3), (61, 90)), ((7, 5), (7, 5))])
def test_conventional_equals_bilinear_align_corners_false(
    cells: tuple[int, int], out: tuple[int, int]
) -> None:
    rng = np.random.default_rng(0)
    cams = rng.normal(size=(3, *cells)).astype(np.float32)
    ours = upsample(cams, out, mode="conventional")
    theirs = F.interpolate(
        torch.from_numpy(cams)[:, None], size=out, mode="bilinear", align_corners=False
    )[:, 0].numpy()
    assert ours.dtype == np.float32 and ours.shape == (3, *out)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_batched_equals_one_by_one() -> None:
    rng = np.random.default_rng(1)
    cams = rng.normal(size=(4, 3, 5)).astype(np.float32)
    geometry = resnet_geometry(16)
    batch = upsample(cams, (70, 90), geometry=geometry, input_hw=(48, 80))
    for k in range(4):
        one = upsample(cams[k], (70, 90), geometry=geometry, input_hw=(48, 80))
        np.testing.assert_allclose(batch[k], one, atol=1e-6)


def test_aligned_needs_a_geometry_and_refuses_bad_input() -> None:
    with pytest.raises(ConfigError, match="conventional"):
        upsample(np.zeros((2, 2)), (8, 8), mode="aligned", geometry=None)
    with pytest.raises(ConfigError, match="unknown upsampling"):
        upsample(np.zeros((2, 2)), (8, 8), mode="nearest", geometry=resnet_geometry(32))


def test_geometry_round_trips_through_json() -> None:
    geometry = CellGeometry((16, 32), (0.5, 14.0))
    assert CellGeometry.from_dict(geometry.to_dict()) == geometry
    with pytest.raises(ConfigError):
        CellGeometry.from_dict({"stride": [16.5, 16], "offset": [0, 0]})
    with pytest.raises(ConfigError):
        CellGeometry.from_dict({"stride": [16]})
