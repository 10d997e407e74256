"""A dataset laid out exactly like Imagenette, end to end; and the zero-shot ImageNet baseline.

The folder ids and the names expected are torchvision's (``datasets.Imagenette``'s table and
the ImageNet-1k categories of its weights), and the ImageNet indices timm's, never camtool's own
table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import ImageNetInfo
from torchvision.datasets import Imagenette
from torchvision.models import ResNet18_Weights
from typer.testing import CliRunner

from camtool.cli import app
from camtool.core.loading import open_runner

cli = CliRunner()

WNIDS = sorted(Imagenette._WNID_TO_CLASS)  # fast.ai's ten ids, as torchvision lists them
INDICES = [ImageNetInfo().label_names().index(w) for w in WNIDS]
NAMES = [ResNet18_Weights.IMAGENET1K_V1.meta["categories"][i] for i in INDICES]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _jpeg(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (36, 44, 3), dtype=np.uint8)).save(path, "JPEG")


@pytest.fixture(scope="module")
def imagenette(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``imagenette2-160/{train,val}/<wnid>/*.JPEG``: 2 training and 1 test image per class."""
    root = tmp_path_factory.mktemp("data") / "imagenette2-160"
    for k, wnid in enumerate(WNIDS):
        for i in range(2):
            _jpeg(root / "train" / wnid / f"{wnid}_{i}.JPEG", 10 * k + i)
        _jpeg(root / "val" / wnid / f"ILSVRC2012_val_{k:08d}.JPEG", 1000 + k)
    return root


def _json(args: list[str]) -> dict:
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _eval_args(root: Path, out: Path) -> list[str]:
    return [
        "eval", "--data-dir", str(root), "--metrics", "classification", "--device", "cpu",
        "--workers", "0", "-o", str(out), "--json",
    ]  # fmt: skip


def test_imagenette_layout_gives_readable_names_everywhere(
    imagenette: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "ck"
    train = [
        "train", "--data-dir", str(imagenette), "--epochs", "1", "--batch-size", "10",
        "--workers", "0", "--device", "cpu", "--img-size", "32", "--val-size", "10",
        "--no-pretrained", "--checkpoint-dir", str(folder), "--json",
    ]  # fmt: skip
    summary = _json(train)
    assert summary["class_names"] == NAMES
    best = Path(summary["checkpoints"]["best"])
    saved = torch.load(best, map_location="cpu", weights_only=True)
    assert saved["class_names"] == NAMES

    photo = imagenette / "val" / WNIDS[5] / "ILSVRC2012_val_00000005.JPEG"
    cam_args = ["cam", str(photo), "--model", str(best), "--topk", "10", "--device", "cpu"]
    cam = _json([*cam_args, "-o", str(tmp_path / "m"), "--json"])
    assert sorted(p["name"] for p in cam["images"][0]["topk"]) == sorted(NAMES)

    report = _json([*_eval_args(imagenette, tmp_path / "ev"), "--model", str(best)])
    assert report["classes"] == NAMES
    assert [row["name"] for row in report["classification"]["per_class"]] == NAMES


# --- the zero-shot baseline -------------------------------------------------------------------


@pytest.fixture
def imagenet(imagenet_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-in ImageNet ResNet-18 weights (seeded, random) where torchvision looks for them."""
    monkeypatch.setenv("TORCH_HOME", str(imagenet_home))
    return imagenet_home


@pytest.mark.usefixtures("imagenet")
def test_zero_shot_logits_and_maps_are_imagenets_at_the_imagenette_indices() -> None:
    full = open_runner(None, "cpu", img_size=32)
    subset = open_runner(None, "cpu", img_size=32, imagenet_classes=WNIDS)
    assert subset.info.class_names == NAMES
    images = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    full_logits, full_cams = full(images)
    logits, cams = subset(images)
    assert logits.shape == (2, 10) and cams.shape[:2] == (2, 10)
    torch.testing.assert_close(logits, full_logits[:, INDICES], rtol=0, atol=1e-5)
    torch.testing.assert_close(cams, full_cams[:, INDICES], rtol=0, atol=1e-5)


@pytest.mark.usefixtures("imagenet")
def test_eval_and_cam_without_model_are_the_zero_shot_baseline(
    imagenette: Path, tmp_path: Path
) -> None:
    report = _json(_eval_args(imagenette, tmp_path / "ev"))
    assert "zero-shot" in report["model"] and report["classes"] == NAMES
    assert report["classification"]["n_images"] == 10
    assert [row["name"] for row in report["classification"]["per_class"]] == NAMES

    photo = imagenette / "val" / WNIDS[9] / "ILSVRC2012_val_00000009.JPEG"
    out = tmp_path / "maps"
    args = ["cam", str(photo), "--topk", "10", "-o", str(out), "--device", "cpu", "--json"]
    cam = _json([*args, "--data-dir", str(imagenette)])
    topk = cam["images"][0]["topk"]
    assert sorted(p["name"] for p in topk) == sorted(NAMES)
    assert sum(p["probability"] for p in topk) == pytest.approx(1.0, abs=1e-4)  # over ten
    full = _json([*args, "--overwrite"])  # no --data-dir: all of ImageNet, as before
    assert len(full["images"][0]["topk"]) == 10
    assert sum(p["probability"] for p in full["images"][0]["topk"]) < 1.0 - 1e-3


@pytest.mark.usefixtures("imagenet")
def test_without_model_classes_that_are_not_imagenette_ids_are_refused(
    imagenette: Path, tmp_path: Path
) -> None:
    other = tmp_path / "pets"
    for split in ("train", "val"):
        _jpeg(other / split / WNIDS[0] / "a.JPEG", 1)
        _jpeg(other / split / "cat" / "b.JPEG", 2)
    result = cli.invoke(app, _eval_args(other, tmp_path / "ev"))
    assert result.exit_code != 0 and "Traceback" not in result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "needs ImageNet/Imagenette class ids" in line
    assert "'cat'" in line and "--model" in line

    photo = other / "val" / "cat" / "b.JPEG"
    result = cli.invoke(app, ["cam", str(photo), "--data-dir", str(other), "-o", str(tmp_path)])
    assert result.exit_code != 0 and "needs ImageNet/Imagenette class ids" in result.stderr


def test_cam_refuses_data_dir_with_a_model_file(
    imagenette: Path, tiny_checkpoint: Path, photo: Path
) -> None:
    result = cli.invoke(
        app, ["cam", str(photo), "--model", str(tiny_checkpoint), "--data-dir", str(imagenette)]
    )
    assert result.exit_code == 2 and "--data-dir" in result.stderr
