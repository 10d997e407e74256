"""Model input sizes of uncropped images: multiples of the output stride, few of them, batchable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from camtool.core.model import CAMNet
from camtool.core.runner import ModelInfo
from camtool.data.images import ResizeGeometry, input_geometry, preprocess
from camtool.evaluation.localization import LocItem, _size_batches


def _imagenette_like_sizes() -> list[tuple[int, int]]:
    """(width, height) of photos like Imagenette-160's: shorter side 160, longer 160..350."""
    rng = np.random.default_rng(0)
    sizes = [(int(w), 160) for w in rng.integers(160, 351, 150)]
    return sizes + [(160, int(h)) for h in rng.integers(161, 351, 50)]


@pytest.mark.parametrize("stride", [32, 16])
def test_each_side_is_a_multiple_of_the_stride_and_aspect_barely_changes(stride: int) -> None:
    sizes = _imagenette_like_sizes()
    shapes = set()
    for width, height in sizes:
        g = input_geometry(width, height, 160, stride=stride)
        assert g.input_width % stride == 0 and g.input_height % stride == 0
        assert min(g.input_size) == 160  # 160 is a multiple of both strides: kept
        exact = max(width, height) * 160 / min(width, height)
        assert abs(max(g.input_size) - exact) <= stride / 2  # at most half a stride per side
        sx, sy = g.input_width / width, g.input_height / height
        assert abs(sx / sy - 1) <= stride / 2 / 160 + 1e-9  # <= 10% (stride 32), 5% (16)
        shapes.add(g.input_size)
    # A handful of input sizes, not one per photo: 6-7 landscape + 6-7 portrait at stride 32.
    assert len(shapes) <= (14 if stride == 32 else 26)
    assert len({(w, h) for w, h in sizes}) > 100


def test_geometry_scale_and_rounding() -> None:
    g = input_geometry(350, 160, 160, stride=32)
    assert g == ResizeGeometry(350, 160, 352, 160)
    assert input_geometry(176, 160, 160, stride=32).input_size == (192, 160)  # 5.5 rounds up
    assert input_geometry(175, 160, 160, stride=32).input_size == (160, 160)
    assert input_geometry(20, 10, 8, stride=32).input_size == (32, 32)  # at least one cell
    assert input_geometry(350, 160, 160).input_size == (350, 160)  # stride 1: exact aspect
    assert input_geometry(1, 1000, 160, stride=32).input_size == (32, 1600)  # aspect capped


@pytest.mark.parametrize("stride", [32, 16])
def test_the_feature_grid_tiles_the_input_exactly(stride: int) -> None:
    net = CAMNet("resnet18", 3, output_stride=stride).eval()
    image = Image.new("RGB", (333, 171), (90, 120, 30))
    x = preprocess(image, 160, (0.5,) * 3, (0.25,) * 3, stride=stride)
    g = input_geometry(333, 171, 160, stride=stride)
    assert tuple(x.shape) == (3, g.input_height, g.input_width)
    with torch.inference_mode():
        _, cams = net.forward_cams(x[None])
    assert tuple(cams.shape[2:]) == (g.input_height // stride, g.input_width // stride)


def test_localization_batches_fill_up_on_mixed_sizes(tmp_path: Path) -> None:
    items = []
    for i, (width, height) in enumerate(_imagenette_like_sizes()[:60]):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (width, height)).save(path)
        items.append(LocItem(path, 0, []))
    info = ModelInfo(class_names=["a"], img_size=160, output_stride=32)
    batches = _size_batches(items, info, 16)
    assert sorted(i for batch in batches for i in batch) == list(range(60))
    sizes = []
    for batch in batches:
        shapes = {input_geometry(*Image.open(items[i].path).size, 160, stride=32) for i in batch}
        assert len({g.input_size for g in shapes}) == 1  # one input size per batch
        sizes.append(next(iter(shapes)).input_size)
    short = [b for b in batches if len(b) < 16]
    assert len(short) <= len(set(sizes))  # only the last batch of each size is short
    assert len(batches) <= 60 // 16 + len(set(sizes))


def test_a_one_cell_map_gives_a_flat_heatmap_not_rounding_noise() -> None:
    from camtool.core.maps import heatmap
    from camtool.core.upsample import resnet_geometry

    geometry = resnet_geometry(16)
    for value in (3.7, -1234.5, 0.0):
        for mode in ("aligned", "conventional"):
            flat = heatmap(torch.full((1, 1), value), (40, 50), mode=mode, geometry=geometry)
            assert not flat.any()
    two = heatmap(torch.tensor([[1.0, 2.0]]), (4, 8), geometry=geometry)
    assert two.min() == 0.0 and two.max() == 1.0 and (np.diff(two, axis=1) >= 0).all()
