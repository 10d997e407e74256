"""Deriving where feature cells sit from the network's layers."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from camtool.core.archs import RESNET_ARCHS
from camtool.core.model import CAMNet
from camtool.core.receptive import cell_geometry, model_geometry
from camtool.core.upsample import CellGeometry, resnet_geometry
from camtool.errors import CamtoolError


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
@pytest.mark.parametrize("stride", [32, 16])
def test_resnets_put_cell_i_on_pixel_stride_times_i(arch: str, stride: int) -> None:
    assert model_geometry(CAMNet(arch, 3, stride)) == CellGeometry((stride, stride), (0.0, 0.0))


def test_resnet_archs_match_the_recorded_fallback() -> None:
    # Exports made before the geometry was recorded fall back on resnet_geometry(). One arch of
    # each block kind (basic, grouped bottleneck, wide bottleneck); resnet18/50 are above.
    for arch in ("resnet34", "resnext50_32x4d", "wide_resnet50_2"):
        assert arch in RESNET_ARCHS
        for stride in (32, 16):
            with torch.device("meta"):  # no weights to initialise: the layers are what count
                model = CAMNet(arch, 2, stride)
            assert model_geometry(model) == resnet_geometry(stride)


def test_other_families_are_derived_from_their_layers() -> None:
    # DenseNet's 2x2 average-pool transitions each move the centre half a cell: 2 + 4 + 8 px.
    densenet = torchvision.models.densenet121(weights=None).features
    assert cell_geometry(densenet, 64) == CellGeometry((32, 32), (14.0, 14.0))
    # MobileNetV2: stride-2 3x3 convs with padding 1 are centre-preserving.
    mobilenet = torchvision.models.mobilenet_v2(weights=None).features
    assert cell_geometry(mobilenet, 64) == CellGeometry((32, 32), (0.0, 0.0))
    # SqueezeNet 1.1: unpadded 3x3 stem and pools shift by a full input cell each time.
    squeeze = torchvision.models.squeezenet1_1(weights=None).features
    assert cell_geometry(squeeze, 96) == CellGeometry((16, 16), (15.0, 15.0))


def test_squeeze_excitation_and_channel_split_are_followed() -> None:
    # EfficientNet (global pooling inside blocks) and ShuffleNet (chunk + cat + channel shuffle).
    effnet = torchvision.models.efficientnet_b0(weights=None).features
    assert cell_geometry(effnet, 64) == CellGeometry((32, 32), (0.0, 0.0))
    s = torchvision.models.shufflenet_v2_x0_5(weights=None)
    trunk = nn.Sequential(s.conv1, s.maxpool, s.stage2, s.stage3, s.stage4, s.conv5)
    assert cell_geometry(trunk, 64) == CellGeometry((32, 32), (0.0, 0.0))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_hand_computed_offsets_and_disagreeing_branches() -> None:
    # conv k5 s2 p0: +2 px, then maxpool k2 s2 p0: +0.5 * 2 = +1 px; stride 4.
    net = nn.Sequential(nn.Conv2d(3, 4, 5, 2), nn.MaxPool2d(2))
    assert cell_geometry(net, 32) == CellGeometry((4, 4), (3.0, 3.0))
    # padding="same" with an even kernel pads less before: k4 d1 -> pad 1 before, +0.5 px.
    assert cell_geometry(nn.Conv2d(3, 2, 4, padding="same"), 16).offset == (0.5, 0.5)

    class TwoBranches(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 2, 3, padding=1)
            self.b = nn.Conv2d(3, 2, 3, padding=0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x)[..., 1:-1, 1:-1] + self.b(x)

    with pytest.raises(CamtoolError, match="cannot place map cells"):
        cell_geometry(TwoBranches(), 16)


def _linear_resnet18(stride: int) -> CAMNet:
    """ResNet-18 with uniform conv weights, identity BN and ReLU, and the max pool made an
    average pool of the same window: a linear network whose gradients show the RF centres."""
    model = CAMNet("resnet18", 1, stride).eval()
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.constant_(module.weight, 1.0 / module.weight[0].numel())
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for module in list(model.feature_extractor().modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, child_name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                setattr(module, child_name, nn.AvgPool2d(3, 2, 1))
    return model


@pytest.mark.parametrize("stride", [32, 16])
def test_gradient_centroid_of_a_cell_is_its_derived_centre(stride: int) -> None:
    model = _linear_resnet18(stride)
    geometry = model_geometry(CAMNet("resnet18", 1, stride))
    size = 448 + 64  # large enough that the cell's whole receptive field (435 px) is inside
    image = torch.zeros(1, 3, size, size, requires_grad=True)
    feats = model.feature_map(image)
    i = feats.shape[-1] // 2
    feats[0, :, i, i].sum().backward()
    assert image.grad is not None
    weight = image.grad[0].abs().sum(dim=0).double()
    coords = torch.arange(size, dtype=torch.float64)
    cy = float((weight.sum(dim=1) * coords).sum() / weight.sum())
    cx = float((weight.sum(dim=0) * coords).sum() / weight.sum())
    expected = geometry.offset[0] + geometry.stride[0] * i
    assert cy == pytest.approx(expected, abs=0.01)
    assert cx == pytest.approx(expected, abs=0.01)
    # The conventional placement would have put this cell half a cell further on.
    assert abs(cx - ((i + 0.5) * size / feats.shape[-1] - 0.5)) > stride / 2 - 1
