"""``camtool cam``, ``config`` and the CLI shell through Typer's CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from camtool import __version__
from camtool.cli import app
from camtool.core.checkpoint import load_checkpoint
from tests.conftest import TINY_CLASSES, make_photo

runner = CliRunner()


def cam_json(*args: str) -> tuple[int, dict, str]:
    result = runner.invoke(app, ["cam", *args, "--json"])
    return result.exit_code, json.loads(result.stdout), result.stderr


def test_version_and_help() -> None:
    assert runner.invoke(app, ["--version"]).stdout.strip() == f"camtool {__version__}"
    result = runner.invoke(app, ["cam", "--help"])
    assert result.exit_code == 0 and "--overlay-only" in result.stdout


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("cam", "--overlay-only"),
        ("batch-cam", "--shard"),
        ("train", "--resume-from"),
        ("eval", "--faithfulness-images"),
        ("export", "--opset"),
        ("download", "--archive"),
        ("demo", "--output-dir"),
        ("config", "--config"),
    ],
)
def test_help_does_not_import_heavy_modules(command: str, option: str) -> None:
    code = (
        "import sys\nfrom camtool.cli import app\n"
        f"try:\n    app([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ['torch', 'torchvision', 'matplotlib', 'onnx', 'onnxruntime',"
        " 'pydantic_settings']\n"
        "print('HEAVY', [m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert option in out.stdout and "HEAVY []" in out.stdout


def test_json_document_with_figure(in_tmp: Path, tiny_checkpoint: Path) -> None:
    image = make_photo(in_tmp / "a.png", (48, 36))
    code, doc, _ = cam_json(str(image), "--model", str(tiny_checkpoint))
    assert code == 0 and doc["failed"] == 0
    entry = doc["images"][0]
    assert entry["input"] == str(image) and entry["error"] is None
    assert len(entry["topk"]) == 3 and {p["name"] for p in entry["topk"]} == set(TINY_CLASSES)
    probs = [p["probability"] for p in entry["topk"]]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-5
    assert entry["targets"][0]["index"] == entry["topk"][0]["index"]  # default: predicted class
    (figure,) = entry["outputs"]
    assert figure.endswith("a_cam.png") and Image.open(figure).format == "PNG"
    assert (in_tmp / "cam_results" / "camtool-settings.toml").is_file()


def test_class_by_name_topk_and_arrays(in_tmp: Path, tiny_checkpoint: Path) -> None:
    image = make_photo(in_tmp / "b.png", (50, 30))
    code, doc, _ = cam_json(
        str(image),
        "--model",
        str(tiny_checkpoint),
        "--class",
        "DOG",
        "--save-array",
        "--overlay-only",
        "-o",
        "out",
    )
    assert code == 0
    entry = doc["images"][0]
    assert entry["targets"][0]["name"] == "dog"
    overlay, arrays = (Path(p) for p in entry["outputs"])
    assert Image.open(overlay).size == (50, 30)  # the image's own resolution
    data = np.load(arrays)
    assert data["cam"].dtype == np.float32 and data["cam"].ndim == 2
    assert data["heatmap"].shape == (30, 50)
    assert data["heatmap"].min() == 0 and abs(data["heatmap"].max() - 1) < 1e-6
    assert int(data["class_idx"]) == 1
    bias = load_checkpoint(tiny_checkpoint).model.fc.bias.detach().numpy()
    assert abs(data["cam"].mean() + bias[1] - data["logits"][1]) < 1e-4  # the CAM invariant

    code, doc, _ = cam_json(str(image), "--model", str(tiny_checkpoint), "--topk", "2", "-o", "k")
    outputs = doc["images"][0]["outputs"]
    assert [Path(p).name for p in outputs] == ["b_top1_cam.png", "b_top2_cam.png"]
    assert [t["index"] for t in doc["images"][0]["targets"]] == [
        p["index"] for p in doc["images"][0]["topk"][:2]
    ]


def test_bad_images_do_not_stop_the_others(in_tmp: Path, tiny_checkpoint: Path) -> None:
    good = make_photo(in_tmp / "x" / "same.png")
    twin = make_photo(in_tmp / "y" / "same.png", seed=3)
    (in_tmp / "bad.jpg").write_text("not an image")
    result = runner.invoke(
        app,
        ["cam", str(good), "missing.jpg", "bad.jpg", str(twin), "--model", str(tiny_checkpoint)],
    )
    assert result.exit_code == 3
    assert "missing.jpg: no such file" in result.stderr
    assert "bad.jpg: not an image" in result.stderr
    assert "Traceback" not in result.output
    written = sorted(p.name for p in (in_tmp / "cam_results").glob("*.png"))
    assert written == ["same-1_cam.png", "same_cam.png"]  # two inputs, two distinct outputs
    assert "cat" in result.stdout  # the predictions table


@pytest.mark.parametrize(
    ("args", "needle", "code"),
    [
        (["--class", "zebra"], "unknown class 'zebra'", 2),
        (["--class", "7"], "out of range", 2),
        (["--alpha", "2"], "cam.alpha", 2),
        (["--colormap", "nope"], "cam.colormap", 2),
    ],
)
def test_bad_flags_are_one_line(
    in_tmp: Path, tiny_checkpoint: Path, args: list[str], needle: str, code: int
) -> None:
    image = make_photo(in_tmp / "c.png")
    result = runner.invoke(app, ["cam", str(image), "--model", str(tiny_checkpoint), *args])
    assert result.exit_code == code
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_checkpoint_for_another_model(in_tmp: Path, tiny_checkpoint: Path) -> None:
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["model_args"]["arch"] = "resnet50"
    torch.save(payload, in_tmp / "wrong.pt")
    image = make_photo(in_tmp / "c.png")
    result = runner.invoke(app, ["cam", str(image), "--model", "wrong.pt"])
    assert result.exit_code == 1
    assert "does not fit a resnet50" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_debug_shows_the_traceback(in_tmp: Path, tiny_checkpoint: Path) -> None:
    image = make_photo(in_tmp / "c.png")
    result = runner.invoke(app, ["--debug", "cam", str(image), "--model", "nope.pt"])
    assert result.exit_code != 0 and result.exception is not None
    assert "not found" in str(result.exception)


def test_default_model_is_imagenet(
    in_tmp: Path, imagenet_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(imagenet_home))
    image = make_photo(in_tmp / "d.png", (64, 64))
    code, doc, _ = cam_json(str(image), "--class", "tench")
    assert code == 0 and doc["images"][0]["targets"][0]["index"] == 0
    assert len(doc["images"][0]["topk"]) == 5


def test_config_command_shows_env_and_file(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (in_tmp / "c.toml").write_text("[training]\nbatch_size = 8\n")
    monkeypatch.setenv("CAMTOOL_TRAINING__NUM_EPOCHS", "3")
    result = runner.invoke(app, ["config", "--config", "c.toml", "--json"])
    doc = json.loads(result.stdout)
    assert doc["training"]["batch_size"] == 8 and doc["training"]["num_epochs"] == 3
    result = runner.invoke(app, ["config", "--config", "c.toml"])
    assert "batch_size = 8" in result.stdout
    (in_tmp / "bad.toml").write_text("[training]\nbatch_size = -1\nfoo = 1\n")
    result = runner.invoke(app, ["config", "--config", "bad.toml"])
    assert result.exit_code == 2
    assert "training.batch_size" in result.stderr and "training.foo: unknown key" in result.stderr
