"""Issue 11, weights: old state dicts load, bad files get one line, NaN never reaches JSON."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from typer.testing import CliRunner

from camtool.cli import app
from camtool.core.checkpoint import load_checkpoint, save_checkpoint
from camtool.core.model import CAMNet, build_model, imagenet_weights_file
from camtool.errors import CamtoolError
from camtool.textio import to_json
from camtool.training.checkpoints import write_metrics
from tests.conftest import TINY_CLASSES, make_photo

cli = CliRunner()


def _old_state_dict(num_classes: int = 3) -> dict[str, torch.Tensor]:
    """A torchvision ResNet-18 state dict as PyTorch < 0.4.1 saved it: no BN step counters."""
    torch.manual_seed(3)
    net = torchvision.models.resnet18(num_classes=num_classes)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
    state = net.state_dict()
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def test_state_dict_without_bn_counters_loads_as_torchvision_does(tmp_path: Path) -> None:
    state = _old_state_dict()
    reference = torchvision.models.resnet18(num_classes=3)
    reference.load_state_dict(state, strict=False)  # what torchvision users do
    torch.save(state, tmp_path / "old.pth")
    loaded = load_checkpoint(tmp_path / "old.pth")
    assert loaded.arch == "resnet18" and loaded.class_names == ["class_0", "class_1", "class_2"]
    ours = loaded.model.state_dict()
    for key, value in state.items():
        torch.testing.assert_close(ours[key], value, rtol=0, atol=0)
    assert int(ours["bn1.num_batches_tracked"]) == 0
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(loaded.model.eval()(x), reference.eval()(x))


def _write_bad(kind: str, folder: Path) -> Path:
    path = folder / f"{kind}.pt"
    if kind == "text":
        path.write_text("hello world\nthis is not a checkpoint\n")
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("a.txt", "not torch")
    elif kind == "truncated":
        torch.save(CAMNet("resnet18", 3).state_dict(), path)
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    return path


@pytest.mark.parametrize("kind", ["text", "zip", "truncated", "empty", "binary"])
def test_foreign_weight_files_get_one_line_naming_them(
    in_tmp: Path, kind: str, tmp_path: Path
) -> None:
    bad = _write_bad(kind, tmp_path)
    with pytest.raises(CamtoolError, match=str(bad)):
        load_checkpoint(bad)
    image = make_photo(in_tmp / "x.png")
    result = cli.invoke(app, ["cam", str(image), "--model", str(bad), "--device", "cpu"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("camtool: error: ")
    assert f"{bad}:" in lines[0] or f"{bad} is" in lines[0]
    assert "internal error" not in lines[0]


def test_bad_cached_imagenet_weights_are_named(
    in_tmp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    _, cache = imagenet_weights_file("resnet18")
    cache.parent.mkdir(parents=True)
    cache.write_text("<html>captive portal</html>")
    with pytest.raises(CamtoolError, match=f"delete {cache} to download"):
        build_model("resnet18", 10, pretrained=True)
    image = make_photo(in_tmp / "x.png")
    result = cli.invoke(app, ["cam", str(image), "--device", "cpu"])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"camtool: error: refusing to load {cache}: it is not a plain")
    assert line.endswith(f"delete {cache} to download the ImageNet weights again")


def test_non_finite_weights_are_refused_at_load(in_tmp: Path) -> None:
    model = CAMNet("resnet18", 3)
    with torch.no_grad():
        model.fc.weight[1, 5] = float("nan")
        model.fc.bias[0] = float("inf")
    path = save_checkpoint(in_tmp / "nan.pt", model, class_names=TINY_CLASSES, img_size=32)
    with pytest.raises(CamtoolError, match=r"non-finite weights: 1 NaN or infinite value\(s\) in"):
        load_checkpoint(path)
    torch.save(model.state_dict(), in_tmp / "plain.pt")
    with pytest.raises(CamtoolError, match="non-finite"):
        load_checkpoint(in_tmp / "plain.pt")
    image = make_photo(in_tmp / "x.png")
    result = cli.invoke(app, ["cam", str(image), "--model", str(path), "--json"])
    assert result.exit_code == 1 and result.stdout == ""
    assert "NaN" in result.stderr and "nan.pt" in result.stderr


def test_json_never_holds_nan_or_infinity(tmp_path: Path) -> None:
    document = {
        "a": math.nan,
        "b": [math.inf, -math.inf, 1.5],
        "c": np.float32("nan"),
        "d": np.array([1.0, np.nan]),
        "e": tmp_path,
        "f": torch.tensor(2.5),
    }
    assert json.loads(to_json(document)) == {
        "a": None,
        "b": [None, None, 1.5],
        "c": None,
        "d": [1.0, None],
        "e": str(tmp_path),
        "f": 2.5,
    }
    write_metrics(tmp_path / "m.jsonl", [{"epoch": 1, "train_loss": math.nan}])
    text = (tmp_path / "m.jsonl").read_text()
    assert text == '{"epoch": 1, "train_loss": null}\n'
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_print_json_maps_non_finite_to_null(capsys: pytest.CaptureFixture[str]) -> None:
    from camtool.cli._output import print_json

    print_json({"probability": math.nan})
    assert json.loads(capsys.readouterr().out) == {"probability": None}


def test_a_file_in_neither_pytorch_format_is_called_that(tmp_path: Path) -> None:
    bad = tmp_path / "fake.pt"
    bad.write_text("hello\n")  # torch.load's own error here is "KeyError: 101", a pickle opcode
    with pytest.raises(CamtoolError, match="neither a zip archive nor a pickle") as info:
        load_checkpoint(bad)
    assert "b'hello\\n'" in str(info.value) and "101" not in str(info.value)
