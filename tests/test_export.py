"""``camtool export``: ONNX and TorchScript graphs returning logits and CAMs; the ONNX runner."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from camtool.cli import app
from camtool.core.checkpoint import load_checkpoint
from camtool.errors import CamtoolError
from tests.conftest import TINY_CLASSES, export_document, make_photo

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, stderr: str, *fragments: str) -> None:
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("camtool: error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def exported(
    tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """The tiny checkpoint exported to ONNX once, through the CLI: (file, JSON report)."""
    target = tmp_path_factory.mktemp("onnx") / "sub" / "tiny.onnx"
    result = runner.invoke(
        app, ["export", "--model", str(tiny_checkpoint), "-o", str(target), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""  # --json: data on stdout, no chatter
    return target, json.loads(result.stdout)


def reference(checkpoint: Path, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    model = load_checkpoint(checkpoint).model.eval()
    with torch.no_grad():
        logits, cams = model.forward_cams(images)
    return logits, cams


def test_export_report(exported: tuple[Path, dict[str, Any]], tiny_checkpoint: Path) -> None:
    path, doc = exported
    assert set(doc) == {
        "file", "format", "opset", "checkpoint", "inputs", "outputs", "samples", "tolerance",
        "size_bytes", "export_seconds", "check_seconds", "metadata", "tolerance_rule", "passed",
    }  # fmt: skip
    assert path.is_file() and doc["file"] == str(path) and doc["passed"] is True
    assert [p.name for p in path.parent.iterdir()] == ["tiny.onnx"]  # no temp file left
    assert (
        doc["format"] == "onnx" and doc["opset"] == 17 and doc["size_bytes"] == path.stat().st_size
    )
    assert doc["checkpoint"] == str(tiny_checkpoint) and doc["export_seconds"] > 0
    (images,) = doc["inputs"]
    assert images["name"] == "images" and images["shape"][1] == 3
    assert all(isinstance(images["shape"][i], str) for i in (0, 2, 3))  # batch, H, W dynamic
    logits, cams = doc["outputs"]
    assert (logits["name"], logits["shape"][1]) == ("logits", 3)
    assert (cams["name"], cams["shape"][1]) == ("cams", 3) and isinstance(cams["shape"][0], str)
    shapes = [s["input_shape"] for s in doc["samples"]]
    assert shapes == [[2, 3, 32, 32], [1, 3, 48, 32]]  # two batch sizes, square and not
    assert [s["cams_shape"] for s in doc["samples"]] == [[2, 3, 1, 1], [1, 3, 2, 1]]
    for sample in doc["samples"]:
        assert sample["passed"] and sample["same_prediction"]
        assert sample["logits_max_diff"] < 1e-4 and sample["cams_max_diff"] < 1e-4
        assert sample["logits_limit"] >= doc["tolerance"] == 1e-3


def test_metadata_read_back(exported: tuple[Path, dict[str, Any]], tiny_checkpoint: Path) -> None:
    import onnx

    from camtool import __version__
    from camtool.core.onnx_runner import OnnxRunner, read_onnx_metadata
    from camtool.export.exporter import metadata_document

    path, doc = exported
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["camtool_format"] == "camtool-cam-export"
    stored = json.loads(props["camtool"])
    assert stored == read_onnx_metadata(path) == doc["metadata"]
    assert stored["class_names"] == TINY_CLASSES and stored["img_size"] == 32
    assert stored["arch"] == "resnet18" and stored["num_classes"] == 3
    assert stored["camtool_version"] == __version__ and stored["source_checkpoint"] == "tiny.pt"
    info = OnnxRunner(path, "cpu").info
    assert info.class_names == TINY_CLASSES and info.img_size == 32 and info.arch == "resnet18"
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    assert info.source == str(path)
    assert stored["cell_geometry"] == {"stride": [32, 32], "offset": [0.0, 0.0]}
    assert info.geometry == load_checkpoint(tiny_checkpoint).geometry
    assert metadata_document(load_checkpoint(tiny_checkpoint)) == stored


def test_onnx_runner_dynamic_batch_and_size(
    exported: tuple[Path, dict[str, Any]], tiny_checkpoint: Path
) -> None:
    from camtool.core.onnx_runner import OnnxRunner

    onnx_runner = OnnxRunner(exported[0], "cpu")
    generator = torch.Generator().manual_seed(3)
    for shape in [(1, 3, 32, 32), (3, 3, 32, 32), (1, 3, 64, 40), (3, 3, 64, 40)]:
        images = torch.randn(shape, generator=generator)
        logits, cams = onnx_runner(images)
        want_logits, want_cams = reference(tiny_checkpoint, images)
        assert logits.shape == want_logits.shape and cams.shape == want_cams.shape
        assert float((logits - want_logits).abs().max()) < 1e-4
        assert float((cams - want_cams).abs().max()) < 1e-4
    assert cams.shape == (3, 3, 2, 2)


def test_onnx_runner_on_auto_runs_where_it_can(exported: tuple[Path, dict[str, Any]]) -> None:
    import onnxruntime as ort

    from camtool.core.onnx_runner import OnnxRunner

    onnx_runner = OnnxRunner(exported[0], "auto")
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    assert onnx_runner.device == ("cuda" if has_cuda else "cpu")
    logits, cams = onnx_runner(torch.zeros(1, 3, 32, 32))
    assert logits.device.type == "cpu" and logits.dtype == torch.float32 and cams.ndim == 4
    arrays = onnx_runner(np.zeros((1, 3, 32, 32), np.float32))  # NumPy in, NumPy out, same values
    assert all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in arrays)
    np.testing.assert_allclose(arrays[0], logits.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(arrays[1], cams.numpy(), rtol=1e-6, atol=1e-6)


def test_cam_on_onnx_equals_cam_on_checkpoint(
    exported: tuple[Path, dict[str, Any]], tiny_checkpoint: Path, tmp_path: Path
) -> None:
    image = make_photo(tmp_path / "pic.png", (70, 45), seed=5)
    docs, arrays = [], []
    for name, model in (("onnx", exported[0]), ("ckpt", tiny_checkpoint)):
        code, stdout, stderr = invoke(
            "cam",
            str(image),
            "--model",
            str(model),
            "--json",
            "--save-array",
            "--topk",
            "2",
            "--device",
            "cpu",
            "-o",
            str(tmp_path / name),
        )
        assert code == 0, stderr
        doc = json.loads(stdout)
        docs.append(doc["images"][0])
        files = [f for m in doc["images"][0]["maps"] for f in m["files"]]
        arrays.append([np.load(p) for p in files if p.endswith(".npz")])
    onnx_doc, ckpt_doc = docs
    assert [m["class_idx"] for m in onnx_doc["maps"]] == [m["class_idx"] for m in ckpt_doc["maps"]]
    for a, b in zip(onnx_doc["topk"], ckpt_doc["topk"], strict=True):  # JSON keeps 4 decimals
        assert a["index"] == b["index"] and abs(a["probability"] - b["probability"]) <= 1.5e-4
    assert len(arrays[0]) == len(arrays[1]) == 2
    for a, b in zip(*arrays, strict=True):
        assert a["cam"].shape == b["cam"].shape and int(a["class_idx"]) == int(b["class_idx"])
        np.testing.assert_allclose(a["cam"], b["cam"], atol=1e-4)
        np.testing.assert_allclose(a["heatmap"], b["heatmap"], atol=1e-3)


def test_torchscript_round_trip(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from camtool.export.exporter import load_torchscript

    checkpoint = tmp_path / "tiny.pt"
    shutil.copy(tiny_checkpoint, checkpoint)
    code, stdout, stderr = invoke("export", "--model", str(checkpoint), "--format", "torchscript")
    assert code == 0, stderr
    path = tmp_path / "tiny.torchscript.pt"  # default: next to the checkpoint
    assert path.is_file() and f"wrote {path}" in stderr
    assert "max |diff|" in stdout and sorted(p.name for p in tmp_path.iterdir()) == [
        "tiny.pt",
        "tiny.torchscript.pt",
    ]
    module, info = load_torchscript(path)
    assert info.class_names == TINY_CLASSES and info.img_size == 32
    images = torch.randn(2, 3, 56, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, cams = module(images)
    want_logits, want_cams = reference(tiny_checkpoint, images)
    assert cams.shape == want_cams.shape == (2, 3, 2, 2)
    assert float((logits - want_logits).abs().max()) < 1e-4
    assert float((cams - want_cams).abs().max()) < 1e-4


def test_failed_check_exits_1_and_leaves_no_file(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import camtool.export.exporter

    monkeypatch.setattr(camtool.export.exporter, "TOLERANCE", -1.0)  # nothing can pass
    target = tmp_path / "out" / "m.onnx"
    code, stdout, stderr = invoke(
        "export", "--model", str(tiny_checkpoint), "-o", str(target), "--json"
    )
    assert code == 1
    assert_one_line_error(code, stderr, "export check failed", "was not written")
    doc = json.loads(stdout)
    assert doc["passed"] is False and not any(s["passed"] for s in doc["samples"])
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_default_output_names() -> None:
    from camtool.export.exporter import default_output

    assert default_output(Path("runs/best.pt")) == Path("runs/best.onnx")
    assert default_output(Path("runs/best.pt"), "torchscript") == Path("runs/best.torchscript.pt")


def test_rejects_onnx_files_that_are_not_camtool_exports(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    image = make_photo(tmp_path / "a.png")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    foreign = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph), str(foreign))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not protobuf \xff\xfe" * 10)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    cases = [
        (foreign, "not a camtool export"),
        (garbage, "not a readable ONNX model"),
        (empty, "not a readable ONNX model"),
        (tmp_path / "missing.onnx", "model not found"),
    ]
    for path, message in cases:
        code, _, stderr = invoke("cam", str(image), "--model", str(path), "--device", "cpu")
        assert_one_line_error(code, stderr, message, str(path))


def test_rejects_damaged_or_newer_metadata() -> None:
    from camtool.core.onnx_runner import info_from_metadata

    good: dict[str, Any] = {
        "format": "camtool-cam-export",
        "format_version": 1,
        "arch": "resnet18",
        "num_classes": 2,
        "class_names": ["a", "b"],
        "img_size": 32,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.2, 0.2, 0.2],
    }
    assert info_from_metadata(good, "m.onnx").class_names == ["a", "b"]
    changes: list[tuple[dict[str, Any], str]] = [
        ({"format_version": 99}, "newer camtool"),
        ({"num_classes": 3}, "damaged"),
        ({"mean": [0.5]}, "damaged"),
        ({"format": "other"}, "not a camtool export"),
    ]
    for change, message in changes:
        with pytest.raises(CamtoolError, match=message):
            info_from_metadata({**good, **change}, "m.onnx")
    with pytest.raises(CamtoolError, match="damaged"):
        info_from_metadata({k: v for k, v in good.items() if k != "img_size"}, "m.onnx")


def test_torchscript_loader_rejects_other_files(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from camtool.export.exporter import load_torchscript

    path = tmp_path / "plain.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in torch 2.14
        torch.jit.save(torch.jit.script(torch.nn.ReLU()), str(path))
    with pytest.raises(CamtoolError, match="not a camtool export"):
        load_torchscript(path)
    with pytest.raises(CamtoolError, match="not a readable TorchScript"):
        load_torchscript(tiny_checkpoint)


def test_export_rejections(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    code, _, stderr = invoke(
        "export", "--model", str(tiny_checkpoint), "-o", str(blocker / "m.onnx")
    )
    assert code == 1
    assert_one_line_error(code, stderr, "cannot write")
    code, _, stderr = invoke("export", "--model", str(tiny_checkpoint), "-o", str(tmp_path))
    assert_one_line_error(code, stderr, "is a folder")

    code, _, stderr = invoke("export", "--model", str(tmp_path / "nope.pt"))
    assert code == 1
    assert_one_line_error(code, stderr, "checkpoint not found")
    code, _, stderr = invoke("export", "--model", str(blocker))
    assert_one_line_error(code, stderr, "afile")

    for extra, message in [
        (["--opset", "11"], "opset 11 not supported"),
        (["--opset", "21"], "opset 21 not supported"),
        (["--format", "torchscript", "--opset", "17"], "ONNX exports only"),
        (["-o", str(tiny_checkpoint)], "overwrite the checkpoint"),
    ]:
        code, _, stderr = invoke("export", "--model", str(tiny_checkpoint), *extra)
        assert code == 2
        assert_one_line_error(code, stderr, message)

    def broken_exporter(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Exporting the operator 'aten::foo' is not supported\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", broken_exporter)
    target = tmp_path / "x.onnx"
    code, stdout, stderr = invoke(
        "export", "--model", str(tiny_checkpoint), "-o", str(target), "--json"
    )
    assert code == 1 and stdout == ""
    assert_one_line_error(code, stderr, "cannot export the model to ONNX", "aten::foo")
    assert not target.exists()


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("img_size", 0, "img_size 0"),
        ("img_size", 100_000, "img_size 100000"),
        ("std", [0, 0, 0], "std"),
        ("mean", [0.5, float("nan"), 0.5], "mean"),
        ("mean", [0.5], "mean"),
        ("num_classes", "many", "many"),
        ("class_names", None, "NoneType"),
    ],
)
def test_damaged_export_metadata_is_named_like_a_damaged_checkpoint(
    field: str, value: object, words: str
) -> None:
    from camtool.core.onnx_runner import info_from_metadata

    good = export_document(arch="resnet18", output_stride=32)
    assert info_from_metadata(good, "m.onnx").img_size == 32
    with pytest.raises(CamtoolError, match="m.onnx has damaged camtool metadata") as info:
        info_from_metadata({**good, field: value}, "m.onnx")
    assert words in str(info.value)
