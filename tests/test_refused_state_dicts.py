"""A torchvision classifier whose head gives no CAM is named, with why, from its state dict."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from typer.testing import CliRunner

from camtool.cli import app
from camtool.core.archs import refusal
from camtool.core.state_dicts import model_of_state_dict
from camtool.errors import CamtoolError
from tests.conftest import make_photo

cli = CliRunner()


def _shapes_only(arch: str, num_classes: int = 1000) -> dict[str, torch.Tensor]:
    """``arch``'s state dict with the right names and shapes, holding no memory."""
    with torch.device("meta"):
        state = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    return {k: torch.zeros(()).expand(v.shape) for k, v in state.state_dict().items()}


@pytest.mark.parametrize(
    ("arch", "classes"),
    [("convnext_tiny", 1000), ("vit_b_16", 1000), ("mobilenet_v3_small", 7), ("vgg11_bn", 3),
     ("swin_t", 1000), ("maxvit_t", 10), ("alexnet", 1000)],
)  # fmt: skip
def test_each_refused_family_is_named_from_its_state_dict(arch: str, classes: int) -> None:
    with pytest.raises(CamtoolError) as info:
        model_of_state_dict(_shapes_only(arch, classes), source="w.pt")
    assert info.value.message == f"w.pt holds a torchvision {arch} state dict, and {refusal(arch)}"


def test_a_state_dict_camtool_does_not_know_is_still_refused_plainly() -> None:
    with pytest.raises(CamtoolError, match="^w.pt is neither a camtool checkpoint nor"):
        model_of_state_dict({"encoder.weight": torch.zeros(3, 3)}, source="w.pt")


def test_cam_on_a_mobilenet_v3_state_dict_is_one_line(tmp_path: Path) -> None:
    weights = tmp_path / "mnv3.pt"
    torch.save(torchvision.models.mobilenet_v3_small(num_classes=4).state_dict(), weights)
    image = make_photo(tmp_path / "x.png")
    result = cli.invoke(app, ["cam", str(image), "--model", str(weights), "--device", "cpu"])
    assert result.exit_code != 0
    assert result.stderr.strip().splitlines() == [
        f"camtool: error: {weights} holds a torchvision mobilenet_v3_small state dict, and "
        f"{refusal('mobilenet_v3_small')}"
    ]
