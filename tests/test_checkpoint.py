"""Checkpoints: round trip, plain state dicts, and refusals (never a silent partial load)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torchvision

from camtool.core.checkpoint import load_checkpoint, save_checkpoint
from camtool.core.model import CAMNet
from camtool.errors import CamtoolError


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    model = CAMNet("resnet18", 3, output_stride=16)
    path = save_checkpoint(
        tmp_path / "m.pt",
        model,
        class_names=["a", "b", "c"],
        img_size=48,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        settings={"training": {"batch_size": 4}},
    )
    loaded = load_checkpoint(path)
    assert loaded.arch == "resnet18" and loaded.model.output_stride == 16
    assert loaded.class_names == ["a", "b", "c"]
    assert loaded.img_size == 48 and loaded.mean == (0.5, 0.5, 0.5)
    assert loaded.settings == {"training": {"batch_size": 4}}
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key]), key
    raw = torch.load(path, weights_only=True)
    assert raw["camtool_version"] and raw["model_args"]["num_classes"] == 3


def test_plain_torchvision_state_dict_loads(tmp_path: Path) -> None:
    net = torchvision.models.resnet18(num_classes=10)
    torch.save(net.state_dict(), tmp_path / "ref.pth")
    loaded = load_checkpoint(tmp_path / "ref.pth", img_size=160)
    assert loaded.arch == "resnet18" and loaded.model.num_classes == 10
    assert loaded.class_names[0] == "class_0"
    assert torch.equal(loaded.model.fc.weight, net.fc.weight)


def test_wrapped_and_other_arch_state_dicts_load(tmp_path: Path) -> None:
    net = torchvision.models.resnet34(num_classes=4)
    torch.save({f"model.{k}": v for k, v in net.state_dict().items()}, tmp_path / "w.pth")
    loaded = load_checkpoint(tmp_path / "w.pth")
    assert loaded.arch == "resnet34" and loaded.model.num_classes == 4


def test_checkpoint_for_another_model_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", CAMNet("resnet18", 3), class_names="abc", img_size=32)
    payload = torch.load(path, weights_only=True)
    payload["model_args"]["arch"] = "resnet34"  # weights of a resnet18 claiming to be a resnet34
    torch.save(payload, path)
    with pytest.raises(CamtoolError, match="does not fit a resnet34"):
        load_checkpoint(path)
    payload["model_args"]["arch"] = "resnet18"
    payload["model_state"]["fc.weight"] = torch.zeros(5, 512)
    torch.save(payload, path)
    with pytest.raises(CamtoolError, match="another shape"):
        load_checkpoint(path)


def test_truncated_state_dict_is_refused(tmp_path: Path) -> None:
    state = torchvision.models.resnet18(num_classes=3).state_dict()
    del state["layer4.1.conv2.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(CamtoolError, match="does not match any accepted torchvision arch"):
        load_checkpoint(tmp_path / "partial.pth")


class Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran",))


def test_loading_never_runs_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump(Payload(), handle)
    with pytest.raises(CamtoolError, match="refusing|not a readable"):
        load_checkpoint(path)
    assert "code ran" not in capsys.readouterr().out


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(CamtoolError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CamtoolError, match="refusing|not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CamtoolError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "list.pt")


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("img_size", 0, "img_size 0"),
        ("img_size", 100_000, "img_size 100000"),  # would exhaust memory before any message
        ("img_size", "64", "img_size '64'"),
        ("std", [0.0, 0.0, 0.0], "std"),  # would divide by zero into NaN maps
        ("mean", [0.5, 0.5], "mean"),
        ("mean", "abc", "mean"),
        ("std", [float("nan"), 1.0, 1.0], "std"),
        ("model_state", None, "model_state is a NoneType"),
        ("model_state", [1, 2], "model_state is a list"),
        ("format_version", "x", "format_version 'x'"),
        ("class_names", None, "class_names is a NoneType"),
    ],
)
def test_damaged_header_fields_are_named(
    tmp_path: Path, field: str, value: object, words: str
) -> None:
    path = save_checkpoint(
        tmp_path / "m.pt", CAMNet("resnet18", 2), class_names=["a", "b"], img_size=32
    )
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, field: value}, tmp_path / "bad.pt")
    with pytest.raises(CamtoolError, match="damaged camtool checkpoint") as info:
        load_checkpoint(tmp_path / "bad.pt")
    assert words in str(info.value) and str(tmp_path / "bad.pt") in str(info.value)
    del payload["img_size"]
    torch.save(payload, tmp_path / "short.pt")
    with pytest.raises(CamtoolError, match="no field 'img_size'"):
        load_checkpoint(tmp_path / "short.pt")
