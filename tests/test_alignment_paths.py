"""Every path from a raw map to pixels uses the aligned placement, and records it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from camtool.core import checkpoint as checkpoint_module
from camtool.core.checkpoint import load_checkpoint, save_checkpoint
from camtool.core.maps import explain_batch, heatmap
from camtool.core.model import CAMNet
from camtool.core.onnx_runner import info_from_metadata
from camtool.core.receptive import DERIVATION_REVISION
from camtool.core.runner import ModelInfo
from camtool.core.torch_runner import TorchRunner
from camtool.core.upsample import CellGeometry, resnet_geometry
from camtool.errors import CamtoolError, ConfigError
from camtool.explain.files import CamOptions, write_maps
from camtool.settings import load_settings, settings_to_toml
from tests.conftest import export_document


def test_checkpoints_record_and_runners_know_the_geometry(tmp_path: Path) -> None:
    path = save_checkpoint(
        tmp_path / "m.pt", CAMNet("resnet18", 2, 16), class_names=["a", "b"], img_size=32
    )
    payload = torch.load(path, weights_only=True)
    assert payload["cell_geometry"] == {
        "stride": [16, 16],
        "offset": [0.0, 0.0],
        "revision": DERIVATION_REVISION,
    }
    runner = TorchRunner(load_checkpoint(path), torch.device("cpu"))
    assert runner.info.geometry == resnet_geometry(16)


def test_a_recorded_geometry_is_reused_only_at_the_same_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint(
        tmp_path / "m.pt", CAMNet("resnet18", 2, 16), class_names=["a", "b"], img_size=32
    )
    payload = torch.load(path, weights_only=True)
    marked = {**payload["cell_geometry"], "offset": [3.0, 3.0]}  # what a trace would not give
    torch.save({**payload, "cell_geometry": marked}, tmp_path / "same.pt")
    traced: list[object] = []
    monkeypatch.setattr(checkpoint_module, "model_geometry", lambda m: traced.append(m))
    assert load_checkpoint(tmp_path / "same.pt").geometry == CellGeometry((16, 16), (3.0, 3.0))
    assert traced == []  # the record was used, the network not traced
    monkeypatch.undo()
    stale = [
        {**marked, "revision": DERIVATION_REVISION - 1},  # an older derivation
        {"stride": [16, 16]},
        None,
        {**marked, "stride": [32, 32]},  # not the model's stride
        {**marked, "offset": [-40.0, 0.0]},  # farther than two strides: edited or damaged
        {**marked, "stride": [True, True]},  # not read as stride 1
    ]
    for record in stale:
        torch.save({**payload, "cell_geometry": record}, tmp_path / "stale.pt")
        assert load_checkpoint(tmp_path / "stale.pt").geometry == resnet_geometry(16), record


def test_exports_without_a_recorded_geometry() -> None:
    base = export_document()
    old = info_from_metadata({**base, "arch": "resnet50", "output_stride": 16}, "old.onnx")
    assert old.geometry == resnet_geometry(16)  # older exports were ResNets: derived
    unknown = info_from_metadata({**base, "arch": "mystery", "output_stride": 8}, "x.onnx")
    assert unknown.geometry is None  # only conventional upsampling is possible then
    with pytest.raises(ConfigError, match="conventional"):
        heatmap(torch.zeros(2, 2), (8, 8), geometry=unknown.geometry)
    good = {"stride": [16, 16], "offset": [0.0, 0.0]}
    recorded = {**base, "arch": "resnet18", "output_stride": 16, "cell_geometry": good}
    assert info_from_metadata(recorded, "m.onnx").geometry == resnet_geometry(16)
    for bad in (
        {"stride": "x"},
        {**good, "stride": [32, 32]},  # disagrees with the export's output_stride
        {**good, "offset": [1e308, 0.0]},
        {**good, "stride": [True, True]},
    ):
        with pytest.raises(CamtoolError, match="cell_geometry"):
            info_from_metadata({**recorded, "cell_geometry": bad}, "bad.onnx")


def test_conventional_heatmap_is_the_old_bilinear_one() -> None:
    cam = torch.randn(3, 5)
    old = F.interpolate(cam[None, None], size=(40, 70), mode="bilinear", align_corners=False)[0, 0]
    old = (old - old.min()) / (old.max() - old.min())
    new = heatmap(cam, (40, 70), mode="conventional")
    np.testing.assert_allclose(new, old.numpy(), atol=1e-5)


class _OneHotCell:
    """A stride-16 'network' whose map is hot in cell (1, 2) whatever the input size."""

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = images.shape
        cams = torch.zeros(n, 2, -(-h // 16), -(-w // 16))
        cams[:, :, 1, 2] = 5.0
        return torch.tensor([[1.0, 0.0]]).repeat(n, 1), cams


def test_saved_heatmap_peaks_on_the_cell_in_original_pixels(tmp_path: Path) -> None:
    # A 300 x 200 photo fed as 72 x 48 (shorter side 48, not a multiple of 16): cell (1, 2) sits
    # on input pixel (16, 32), i.e. on original pixel
    # ((16 + 0.5) * 200/48 - 0.5, (32 + 0.5) * 300/72 - 0.5); conventionally the 3 x 5 cells are
    # spread evenly: ((1 + 0.5) * 200/3 - 0.5, (2 + 0.5) * 60 - 0.5).
    image = Image.new("RGB", (300, 200))
    info = ModelInfo(["a", "b"], img_size=48, geometry=resnet_geometry(16))
    batch = explain_batch(_OneHotCell(), torch.zeros(1, 3, 48, 72))
    for mode, expected in (("aligned", (68.25, 134.9)), ("conventional", (99.5, 149.5))):
        options = CamOptions(figure=False, save_array=True, upsample=mode)
        write_maps(image, batch, 0, tmp_path / mode, info, options)
        heat = np.load(tmp_path / f"{mode}.npz")["heatmap"]
        assert heat.shape == (200, 300)
        ys, xs = np.nonzero(heat == heat.max())
        assert abs(ys.mean() - expected[0]) <= 1.0 and abs(xs.mean() - expected[1]) <= 1.0


def test_the_setting_defaults_to_aligned_and_is_saved() -> None:
    settings = load_settings(None, {})
    assert settings.cam.upsample.value == "aligned"
    assert 'upsample = "aligned"' in settings_to_toml(settings)
    assert load_settings(None, {"cam": {"upsample": "conventional"}}).cam.upsample.value == (
        "conventional"
    )
    with pytest.raises(ConfigError, match="cam.upsample"):
        load_settings(None, {"cam": {"upsample": "nearest"}})


def test_geometry_validation() -> None:
    with pytest.raises(ConfigError):
        CellGeometry((0, 16), (0.0, 0.0))
