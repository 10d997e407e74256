"""The CAM network: the invariant, agreement with a hook-based reference, ImageNet weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from camtool.core.model import CAMNet, build_model, imagenet_class_names, imagenet_weights_file
from camtool.errors import CamtoolError


@pytest.fixture(scope="module")
def net() -> CAMNet:
    torch.manual_seed(0)
    model = CAMNet("resnet18", 5).eval()
    with torch.no_grad():
        model.fc.bias.normal_()  # a non-zero bias, so the invariant really involves it
    return model


def test_spatial_mean_of_cam_plus_bias_is_the_logit(net: CAMNet) -> None:
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        logits, cams = net.forward_cams(x)
        plain = net(x)
    assert cams.shape == (2, 5, 2, 3)
    torch.testing.assert_close(cams.mean(dim=(2, 3)) + net.fc.bias, logits)
    torch.testing.assert_close(logits, plain, rtol=1e-5, atol=1e-5)


def test_cam_equals_a_hook_based_reference(net: CAMNet) -> None:
    reference = torchvision.models.resnet18(num_classes=5).eval()
    reference.load_state_dict(net.state_dict())
    captured: list[torch.Tensor] = []
    handle = reference.layer4.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        x = torch.randn(1, 3, 96, 96)
        with torch.no_grad():
            ref_logits = reference(x)
            logits, cams = net.forward_cams(x)
    finally:
        handle.remove()
    features = captured[0][0]  # (K, h, w)
    for c in range(5):
        expected = (reference.fc.weight[c][:, None, None] * features).sum(0)
        torch.testing.assert_close(cams[0, c], expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-4)


def test_output_stride_16_doubles_the_map() -> None:
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        assert CAMNet("resnet18", 3, 32).forward_cams(x).cams.shape[-2:] == (5, 5)
        assert CAMNet("resnet18", 3, 16).forward_cams(x).cams.shape[-2:] == (10, 10)
        assert CAMNet("resnet50", 3, 16).forward_cams(x).cams.shape[-2:] == (10, 10)


def test_unknown_arch_is_refused() -> None:
    with pytest.raises(CamtoolError, match="unknown arch"):
        CAMNet("resnet7", 3)


def test_imagenet_class_names_need_no_download() -> None:
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench"


def test_pretrained_weights_load_from_the_cache(
    imagenet_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(imagenet_home))
    _, cache = imagenet_weights_file("resnet18")
    stored = torch.load(cache, weights_only=True)
    model = build_model("resnet18", 10, pretrained=True)
    torch.testing.assert_close(model.conv1.weight, stored["conv1.weight"])
    assert model.fc.out_features == 10
    full = build_model("resnet18", 1000, pretrained=True)
    torch.testing.assert_close(full.fc.weight, stored["fc.weight"])


def test_offline_without_cache_names_the_file_and_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    real = imagenet_weights_file

    def unreachable(arch: str) -> tuple[str, Path]:
        _, cache = real(arch)
        return "http://127.0.0.1:9/resnet18-f37072fd.pth", cache

    monkeypatch.setattr("camtool.core.model.imagenet_weights_file", unreachable)
    with pytest.raises(CamtoolError) as info:
        build_model("resnet18", 10, pretrained=True)
    message = str(info.value)
    assert str(tmp_path / "empty") in message and "resnet18-f37072fd.pth" in message
    assert "--no-pretrained" in message
