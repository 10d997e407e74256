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
    assert set(entry) == {"input", "error", "topk", "target", "maps", "true_idx", "true_name"}
    assert entry["input"] == str(image) and entry["error"] is None and entry["target"] is None
    (top,) = entry["topk"]  # --topk defaults to 1: exactly one prediction, listed once
    assert set(top) == {"index", "name", "probability", "logit"} and top["name"] in TINY_CLASSES
    ((class_idx, (figure,)),) = [(m["class_idx"], m["files"]) for m in entry["maps"]]
    assert class_idx == top["index"]  # default: the predicted class
    assert figure.endswith("a_cam.png") and Image.open(figure).format == "PNG"
    assert (in_tmp / "cam_results" / "camtool-settings.toml").is_file()

    code, doc, _ = cam_json(str(image), "--model", str(tiny_checkpoint), "--topk", "3")
    topk = doc["images"][0]["topk"]
    assert len(topk) == 3 and {p["name"] for p in topk} == set(TINY_CLASSES)
    probs = [p["probability"] for p in topk]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-3
    assert all(p == round(p, 4) for p in probs)  # rounded: no float noise


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
    assert entry["target"]["name"] == "dog" and entry["maps"][0]["class_idx"] == 1
    assert len(entry["topk"]) == 1  # the top prediction, whatever the class explained
    overlay, arrays = (Path(p) for p in entry["maps"][0]["files"])
    assert Image.open(overlay).size == (50, 30)  # the image's own resolution
    data = np.load(arrays)
    assert data["cam"].dtype == np.float32 and data["cam"].ndim == 2
    assert data["heatmap"].shape == (30, 50)
    assert data["heatmap"].min() == 0 and abs(data["heatmap"].max() - 1) < 1e-6
    assert int(data["class_idx"]) == 1
    bias = load_checkpoint(tiny_checkpoint).model.fc.bias.detach().numpy()
    assert abs(data["cam"].mean() + bias[1] - data["logits"][1]) < 1e-4  # the CAM invariant

    code, doc, _ = cam_json(str(image), "--model", str(tiny_checkpoint), "--topk", "2", "-o", "k")
    maps = doc["images"][0]["maps"]
    assert [Path(f).name for m in maps for f in m["files"]] == ["b_top1_cam.png", "b_top2_cam.png"]
    assert [m["class_idx"] for m in maps] == [p["index"] for p in doc["images"][0]["topk"]]


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
    assert "probability" in result.stdout  # the predictions table
    assert result.stderr.strip().splitlines()[-1] == "2 of 4 images failed"


def test_every_input_failing_exits_1_in_one_line(in_tmp: Path, tiny_checkpoint: Path) -> None:
    result = runner.invoke(app, ["cam", "missing.jpg", "--model", str(tiny_checkpoint)])
    assert result.exit_code == 1
    assert result.stderr == "camtool: error: missing.jpg: no such file\n"
    (in_tmp / "bad.jpg").write_text("not an image")
    code, doc, stderr = cam_json("missing.jpg", "bad.jpg", "--model", str(tiny_checkpoint))
    assert code == 1 and doc["failed"] == 2
    lines = stderr.splitlines()  # with --json too, each failure is a line on stderr
    assert lines[0] == "camtool: error: missing.jpg: no such file" and len(lines) == 2
    assert lines[1].startswith("camtool: error: ") and "bad.jpg" in lines[1]


@pytest.mark.parametrize("command", ["cam", "batch-cam"])
def test_class_and_topk_together_are_refused(
    in_tmp: Path, tiny_checkpoint: Path, command: str
) -> None:
    image = make_photo(in_tmp / "c.png")
    args = [command, str(image), "--model", str(tiny_checkpoint), "--class", "1", "--topk", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "--class and --topk cannot be combined" in line and len(line.splitlines()) == 1
    assert not (in_tmp / "cam_results").exists()  # refused before any work


@pytest.mark.parametrize(
    ("args", "needle", "code"),
    [
        (["--class", "zebra"], "unknown class 'zebra'", 2),
        (["--class", "7"], "out of range", 2),
        (["--alpha", "2"], "invalid settings: --alpha: Input should be less than or equal to 1", 2),
        (["--colormap", "nope"], "--colormap: unknown matplotlib colormap 'nope'\n", 2),
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
    assert code == 0 and doc["images"][0]["target"]["index"] == 0
    assert len(doc["images"][0]["topk"]) == 1


def test_config_command_shows_env_and_file(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (in_tmp / "c.toml").write_text("[training]\nbatch_size = 8\n")
    monkeypatch.setenv("CAMTOOL_TRAINING__NUM_EPOCHS", "3")
    result = runner.invoke(app, ["config", "--config", "c.toml", "--json"])
    doc = json.loads(result.stdout)
    assert set(doc) == {"model", "training", "runtime", "dataset", "cam"}
    assert doc["training"]["batch_size"] == 8 and doc["training"]["num_epochs"] == 3
    result = runner.invoke(app, ["config", "--config", "c.toml"])
    assert "batch_size = 8" in result.stdout
    (in_tmp / "bad.toml").write_text("[training]\nbatch_size = -1\nfoo = 1\n")
    result = runner.invoke(app, ["config", "--config", "bad.toml"])
    assert result.exit_code == 2
    assert "training.batch_size" in result.stderr and "training.foo: unknown key" in result.stderr


def test_offline_without_cached_weights_is_one_line(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib.error

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    image = make_photo(in_tmp / "e.png")
    result = runner.invoke(app, ["cam", str(image)])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()  # no torch.hub "Downloading: ..." before it
    assert line.startswith("camtool: error: cannot get ImageNet weights for resnet18")
    assert "resnet18-f37072fd.pth" in line and "--model CKPT" in line


def test_cached_imagenet_weights_are_used_without_a_download(
    in_tmp: Path, imagenet_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(imagenet_home))
    monkeypatch.setattr(torch.hub, "download_url_to_file", pytest.fail)
    image = make_photo(in_tmp / "f.png", (40, 40))
    code, doc, stderr = cam_json(str(image))
    assert code == 0 and doc["images"][0]["error"] is None and stderr == ""
