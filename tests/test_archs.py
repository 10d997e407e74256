"""Every accepted torchvision family end to end, the refused ones, the invariant gate, timm."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from typer.testing import CliRunner

from camtool.cli import app
from camtool.core import heads
from camtool.core.archs import ARCHS, FAMILIES, REFUSED, arch_problem, family_of, refusal
from camtool.core.checkpoint import load_checkpoint, save_checkpoint
from camtool.core.model import CAMNet, build_model, check_cam_invariant
from camtool.errors import EXIT_USAGE, CamtoolError, ConfigError
from camtool.export.exporter import export_model
from camtool.settings import load_settings
from tests.conftest import make_photo

runner = CliRunner()

#: The smallest arch of each family (tests build these with random weights and few classes).
SMALLEST = {
    "resnet": "resnet18",
    "densenet": "densenet121",
    "efficientnet": "efficientnet_b0",
    "mobilenet_v2": "mobilenet_v2",
    "mnasnet": "mnasnet0_5",
    "regnet": "regnet_x_400mf",
    "shufflenet_v2": "shufflenet_v2_x0_5",
    "googlenet": "googlenet",
    "inception_v3": "inception_v3",
    "squeezenet": "squeezenet1_1",
}
#: What torchvision's builders need to make the same network camtool builds.
TV_KWARGS = {
    "googlenet": {"aux_logits": True, "transform_input": True, "init_weights": True},
    "inception_v3": {"aux_logits": True, "transform_input": True, "init_weights": True},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def size_for(arch: str) -> int:
    family = family_of(arch)
    assert family is not None
    return max(64, family.min_size + 5)


def test_every_torchvision_classifier_is_accepted_or_refused() -> None:
    """A torchvision upgrade that adds a classifier makes this fail until it is read and filed."""
    listed = set(torchvision.models.list_models(module=torchvision.models))
    accepted = set(ARCHS)
    refused = {arch for arch in listed if refusal(arch) is not None}
    assert accepted <= listed
    assert not accepted & refused
    assert listed == accepted | refused
    assert set(SMALLEST) == {f.name for f in FAMILIES}


@pytest.mark.parametrize("arch", sorted(REFUSED))
def test_refused_prefixes_name_their_reason(arch: str) -> None:
    name = {"vgg": "vgg16_bn", "vit": "vit_b_16", "swin": "swin_v2_t"}.get(arch, arch)
    if arch in ("convnext", "mobilenet_v3", "maxvit"):
        name = {"convnext": "convnext_tiny", "mobilenet_v3": "mobilenet_v3_small"}.get(
            arch, "maxvit_t"
        )
    problem = arch_problem(name)
    assert problem == f"{name} cannot give class activation maps: {REFUSED[arch]}"
    with pytest.raises(ConfigError, match="cannot give class activation maps"):
        CAMNet(name, 3)


def test_refused_arch_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--arch", "convnext_tiny", "--data-dir", str(tmp_path)])
    assert result.exit_code == EXIT_USAGE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "LayerNorm after the pooling" in lines[0]
    result = runner.invoke(app, ["cam", "x.png", "--arch", "mobilenet_v3_large"])
    assert result.exit_code == EXIT_USAGE and "hidden linear layer" in result.stderr


@pytest.mark.parametrize(
    ("arch", "stride", "wanted"),
    [("squeezenet1_0", 32, "its own output stride is 16"), ("inception_v3", 16, "Mixed_7a")],
)
def test_strides_an_arch_cannot_have_are_refused(arch: str, stride: int, wanted: str) -> None:
    with pytest.raises(ConfigError, match=wanted):
        CAMNet(arch, 3, stride)
    with pytest.raises(ConfigError, match=f"model: .*{arch} cannot have output stride {stride}"):
        load_settings(None, {"model": {"arch": arch, "output_stride": stride}})


def test_input_smaller_than_the_arch_accepts_is_refused() -> None:
    with pytest.raises(ConfigError, match="inception_v3 needs images of at least 75 px"):
        load_settings(None, {"model": {"arch": "inception_v3"}, "dataset": {"img_size": 64}})


def test_gate_refuses_a_head_read_wrongly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forgetting DenseNet's ReLU after ``features`` would shift every map: the gate sees it."""
    densenet = family_of("densenet121")
    assert densenet is not None
    misread = dataclasses.replace(densenet, relu_after=False)
    monkeypatch.setattr(heads, "family_of", lambda arch: misread)
    torch.manual_seed(0)
    with pytest.raises(CamtoolError, match=r"densenet121 is refused: the mean of its class"):
        build_model("densenet121", 3)


def test_gate_refuses_nan_weights() -> None:
    model = CAMNet("shufflenet_v2_x0_5", 3)
    with torch.no_grad():
        model.fc.weight[0, 0] = float("nan")
    with pytest.raises(CamtoolError, match="shufflenet_v2_x0_5 is refused: its logits or maps"):
        check_cam_invariant(model)


def _torchvision_twin(arch: str, num_classes: int) -> torch.nn.Module:
    family = family_of(arch)
    assert family is not None
    kwargs = TV_KWARGS.get(family.name, {})
    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)


@pytest.fixture(scope="module")
def family_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """For each family: a plain torchvision state dict file (random weights, 4 classes)."""
    root = tmp_path_factory.mktemp("tv_state_dicts")
    files = {}
    for name, arch in SMALLEST.items():
        torch.manual_seed(0)
        net = _torchvision_twin(arch, 4)
        with torch.no_grad():  # make the BN statistics non-trivial, so a misplaced layer shows
            for module in net.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.1, 0.1)
                    module.running_var.uniform_(0.5, 1.5)
        files[name] = root / f"{arch}.pth"
        torch.save(net.state_dict(), files[name])
    return files


@pytest.mark.parametrize("family", sorted(SMALLEST))
def test_torchvision_state_dict_is_recognised_and_its_maps_give_its_logits(
    family: str, family_checkpoints: dict[str, Path]
) -> None:
    arch = SMALLEST[family]
    loaded = load_checkpoint(family_checkpoints[family])
    assert loaded.arch == arch and loaded.model.num_classes == 4
    twin = _torchvision_twin(arch, 4).eval()
    twin.load_state_dict(torch.load(family_checkpoints[family], weights_only=True))
    x = torch.randn(2, 3, size_for(arch), size_for(arch) + 16)
    model = loaded.model.eval()
    with torch.no_grad():
        logits, cams = model.forward_cams(x)
        want = twin(x)
    scale = max(1.0, float(want.abs().max()))
    torch.testing.assert_close(logits / scale, want / scale, atol=1e-4, rtol=0)
    # .to(device) moves what the model registers: the trunk must hold nothing else.
    registered = {id(t) for t in [*model.parameters(), *model.buffers()]}
    trunk = model.feature_extractor()
    assert {id(t) for t in [*trunk.parameters(), *trunk.buffers()]} <= registered
    torch.testing.assert_close(
        (cams.mean(dim=(2, 3)) + model.cam_bias()) / scale, want / scale, atol=1e-4, rtol=0
    )


@pytest.mark.parametrize("family", sorted(SMALLEST))
def test_output_stride_16_halves_the_stride(family: str) -> None:
    arch = SMALLEST[family]
    fam = family_of(arch)
    assert fam is not None
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        sizes = {s: CAMNet(arch, 2, s).eval().feature_map(x).shape[-1] for s in fam.strides}
    if family == "inception_v3":  # unpadded layers: (128 - 75) // 32 + 1
        assert sizes == {32: 2}
    elif family == "squeezenet":  # its 7x7 stem and 3x3 poolings have no padding
        assert sizes == {16: 7}
    else:
        assert sizes == {32: 4, 16: 8}


@pytest.mark.parametrize("family", sorted(SMALLEST))
def test_receptive_field_geometry_is_derived_for_every_family(family: str) -> None:
    """Map alignment derives each cell's place from the trunk's own layers (issue 9)."""
    receptive = pytest.importorskip("camtool.core.receptive")
    arch = SMALLEST[family]
    fam = family_of(arch)
    assert fam is not None
    for stride in fam.strides:
        geometry = receptive.cell_geometry(CAMNet(arch, 2, stride).eval().feature_extractor())
        assert tuple(geometry.stride) == (stride, stride)
        if family in (
            "resnet",
            "efficientnet",
            "mobilenet_v2",
            "mnasnet",
            "regnet",
            "shufflenet_v2",
        ):
            assert tuple(geometry.offset) == (0.0, 0.0)  # "same" padding everywhere


def test_legacy_densenet_key_names_load(tmp_path: Path) -> None:
    """torchvision's own DenseNet ImageNet files still say ``norm.1`` for ``norm1``."""
    state = _torchvision_twin("densenet121", 3).state_dict()
    legacy = {
        k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v for k, v in state.items()
    }
    assert legacy.keys() != state.keys()
    torch.save(legacy, tmp_path / "old.pth")
    loaded = load_checkpoint(tmp_path / "old.pth")
    assert loaded.arch == "densenet121"
    torch.testing.assert_close(
        loaded.model.state_dict()["classifier.weight"], state["classifier.weight"]
    )


def test_arch_flag_names_a_state_dict(tmp_path: Path) -> None:
    state = _torchvision_twin("mnasnet0_5", 3).state_dict()
    torch.save(state, tmp_path / "m.pth")
    assert load_checkpoint(tmp_path / "m.pth", arch="mnasnet0_5").arch == "mnasnet0_5"
    with pytest.raises(CamtoolError, match="does not fit a mnasnet1_0"):
        load_checkpoint(tmp_path / "m.pth", arch="mnasnet1_0")


@pytest.mark.parametrize("family", sorted(SMALLEST))
def test_cam_and_export_round_trip(family: str, tmp_path: Path) -> None:
    """A camtool checkpoint of each family: ``camtool cam`` maps satisfy the invariant through
    the whole command, and the ONNX export reproduces logits and maps."""
    arch = SMALLEST[family]
    size = size_for(arch)
    torch.manual_seed(0)
    model = build_model(arch, 3, output_stride=16 if family == "squeezenet" else 32)
    ckpt = save_checkpoint(tmp_path / "m.pt", model, class_names="abc", img_size=size)
    photo = make_photo(tmp_path / "p.png", (size + 10, size))
    result = runner.invoke(
        app, ["cam", str(photo), "-m", str(ckpt), "--save-array", "-o", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["failed"] == 0
    arrays = np.load(tmp_path / "p.npz")
    c = int(arrays["class_idx"])
    bias = model.cam_bias().detach().numpy()
    logit = float(arrays["logits"][c])
    assert abs(float(arrays["cam"].mean()) + bias[c] - logit) <= 1e-3 * max(1.0, abs(logit))

    report = export_model(ckpt, output=tmp_path / "m.onnx")
    assert report.passed and report.metadata["arch"] == arch
    assert report.samples[0].cams_shape[:2] == [2, 3]


@pytest.fixture(scope="module")
def shapes32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from camtool.data.synthetic import make_shapes_dataset

    root = tmp_path_factory.mktemp("arch_train") / "shapes"
    return make_shapes_dataset(
        root, train_per_class=4, val_per_class=1, image_size=32, seed=1, classes=("ring", "cross")
    )


@pytest.mark.parametrize("arch", ["densenet121", "efficientnet_b0", "mobilenet_v2"])
def test_short_training_run(arch: str, shapes32: Path, tmp_path: Path) -> None:
    from camtool.training.loop import SilentObserver, train

    settings = load_settings(
        None,
        {
            "model": {"arch": arch, "pretrained": False, "output_stride": 16},
            "dataset": {"name": "folder", "data_dir": shapes32, "img_size": 32, "val_size": 2},
            "training": {
                "batch_size": 3,
                "num_epochs": 1,
                "checkpoint_dir": tmp_path,
                "early_stopping_patience": 0,
            },
            "runtime": {"workers": 0, "device": "cpu"},
        },
    )
    result = train(settings, observer=SilentObserver())
    assert result.best_checkpoint is not None
    loaded = load_checkpoint(result.best_checkpoint)
    assert (loaded.arch, loaded.model.output_stride) == (arch, 16)
    with torch.no_grad():
        cams = loaded.model.eval().forward_cams(torch.randn(1, 3, 32, 32)).cams
    assert cams.shape == (1, 2, 2, 2) and torch.isfinite(cams).all()


def test_timm_arch_behind_the_same_gate(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    torch.manual_seed(0)
    model = build_model("timm:test_resnet", 3)
    ckpt = save_checkpoint(tmp_path / "t.pt", model, class_names="abc", img_size=64)
    loaded = load_checkpoint(ckpt)
    assert loaded.arch == "timm:test_resnet"
    torch.testing.assert_close(loaded.model.state_dict()["fc.weight"], model.fc.weight)
    assert (
        build_model("timm:test_resnet", 3, output_stride=16)
        .feature_map(torch.randn(1, 3, 64, 64))
        .shape[-1]
        == 4
    )
    with pytest.raises(CamtoolError, match="mobilenetv3_small_050 is refused: its feature map"):
        build_model("timm:mobilenetv3_small_050", 3)
    with pytest.raises(CamtoolError, match=r"timm cannot build 'no_such_net'"):
        build_model("timm:no_such_net", 3)


def test_pretrained_weights_from_the_cache_with_torchvision_quirks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchvision's files as they are: DenseNet's legacy key names, GoogLeNet's aux heads."""
    from camtool.core.model import imagenet_weights_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    stored = {}
    for arch in ("densenet121", "googlenet"):
        torch.manual_seed(1)
        state = _torchvision_twin(arch, 1000).state_dict()
        if arch == "densenet121":
            state = {k.replace("norm1.", "norm.1."): v for k, v in state.items()}
        _, cache = imagenet_weights_file(arch)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, cache)
        stored[arch] = state
    dense = build_model("densenet121", 3, pretrained=True)
    torch.testing.assert_close(
        dense.features.denseblock1.denselayer1.norm1.weight,
        stored["densenet121"]["features.denseblock1.denselayer1.norm.1.weight"],
    )
    assert dense.classifier.out_features == 3
    google = build_model("googlenet", 1000, pretrained=True)
    torch.testing.assert_close(google.fc.weight, stored["googlenet"]["fc.weight"])
    assert "aux1.conv.conv.weight" in stored["googlenet"]
    assert not any(k.startswith("aux") for k in google.state_dict())


def test_offline_message_names_the_archs_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from camtool.core import model as model_module

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    real = model_module.imagenet_weights_file
    url, cache = real("efficientnet_b0")
    monkeypatch.setattr(
        model_module,
        "imagenet_weights_file",
        lambda arch: ("http://127.0.0.1:9/" + url.rsplit("/", 1)[-1], real(arch)[1]),
    )
    with pytest.raises(CamtoolError) as info:
        build_model("efficientnet_b0", 3, pretrained=True)
    assert cache.name.startswith("efficientnet_b0") and str(cache) in str(info.value)


def test_cam_command_with_arch_for_a_state_dict(tmp_path: Path) -> None:
    torch.save(_torchvision_twin("mnasnet0_5", 3).state_dict(), tmp_path / "m.pth")
    photo = make_photo(tmp_path / "p.png", (80, 64))
    args = ["cam", str(photo), "-m", str(tmp_path / "m.pth"), "-o", str(tmp_path), "--json"]
    result = runner.invoke(app, [*args, "--arch", "mnasnet0_5"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["images"][0]["topk"][0]["name"].startswith("class_")
    result = runner.invoke(app, [*args, "--arch", "mnasnet1_0"])
    assert result.exit_code == 1 and "does not fit a mnasnet1_0" in result.stderr


def test_demo_takes_an_arch(tmp_path: Path) -> None:
    from camtool.demo.pipeline import DEMO_DEFAULTS, demo_settings

    dense = demo_settings(tmp_path, DEMO_DEFAULTS, arch="densenet121").model
    assert (dense.arch, dense.output_stride) == ("densenet121", DEMO_DEFAULTS.output_stride)
    at32 = dataclasses.replace(DEMO_DEFAULTS, output_stride=32)
    squeeze = demo_settings(tmp_path, at32, arch="squeezenet1_1").model
    assert (squeeze.arch, squeeze.output_stride) == ("squeezenet1_1", None)  # its own: 16
    assert demo_settings(tmp_path, DEMO_DEFAULTS).model.arch == "resnet18"
    result = runner.invoke(app, ["demo", "--arch", "vgg16", "-o", str(tmp_path)])
    assert result.exit_code == EXIT_USAGE and "hidden fully connected" in result.stderr
