"""Issue 11, images: every command reads an image file through the same decoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor
from typer.testing import CliRunner

from camtool.cli import app
from camtool.core.runner import ModelInfo
from camtool.data.datasets import ImageFolderDataset, SkippedImage, build_transforms
from camtool.data.images import load_image, preprocess
from camtool.data.splits import make_splits
from camtool.evaluation.evaluate import evaluate_classification, split_dataset

cli = CliRunner()
ZERO, ONE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


def _grey16(path: Path, level: int, size: tuple[int, int] = (24, 20)) -> Path:
    """A 16-bit grayscale PNG of one level (0..65535), with a darker left half."""
    pixels = np.full((size[1], size[0]), level, dtype=np.uint16)
    pixels[:, : size[0] // 2] = level // 2
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    assert Image.open(path).mode == "I;16"
    return path


def _mode_image(path: Path, mode: str) -> Path:
    """A small image in ``mode`` with a gradient, so scaling mistakes show."""
    ramp = np.linspace(0, 1, 12 * 10).reshape(10, 12)
    if mode == "F":
        image = Image.fromarray(ramp.astype(np.float32), mode="F")
    elif mode == "I":
        image = Image.fromarray((ramp * 40000).astype(np.int32))
    elif mode == "LA":
        image = Image.fromarray((ramp * 255).astype(np.uint8)).convert("LA")
        image.putalpha(Image.fromarray((ramp[::-1] * 255).astype(np.uint8)))
    elif mode == "P":
        image = Image.fromarray((ramp * 255).astype(np.uint8)).convert("P")
        image.info["transparency"] = 0
    else:
        image = Image.fromarray((ramp * 255).astype(np.uint8)).convert(mode)
    suffix = {"CMYK": ".jpg", "F": ".tif", "I": ".tif"}.get(mode, ".png")
    target = path.with_suffix(suffix)
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, **({"transparency": 0} if mode == "P" else {}))
    return target


@pytest.mark.parametrize("mode", ["I;16", "I", "F", "LA", "P", "CMYK", "1", "RGBA"])
def test_train_eval_and_cam_read_the_same_pixels(tmp_path: Path, mode: str) -> None:
    if mode == "I;16":
        path = _grey16(tmp_path / "train" / "a" / "x.png", 40000)
    else:
        path = _mode_image(tmp_path / "train" / "a" / "x", mode)
    transform = build_transforms(16, False, ZERO, ONE)
    from_dataset = ImageFolderDataset(tmp_path, "train", transform)[0]
    assert isinstance(from_dataset, tuple)
    assert torch.equal(from_dataset[0], transform(load_image(path)))


def test_sixteen_bit_levels_are_kept_by_every_reader(tmp_path: Path) -> None:
    path = _grey16(tmp_path / "train" / "a" / "x.png", 40000)
    cam_pixels = np.asarray(load_image(path))
    assert cam_pixels[0, -1].tolist() == [156] * 3  # round(40000 / 65535 * 255)
    assert cam_pixels[0, 0].tolist() == [78] * 3  # round(20000 / 65535 * 255)
    transform = build_transforms(20, False, ZERO, ONE)
    item = ImageFolderDataset(tmp_path, "train", transform)[0]
    assert isinstance(item, tuple)
    assert item[0].max().item() == pytest.approx(156 / 255, abs=1e-6)  # not white (1.0)


def test_float_and_int32_images_are_scaled_from_their_range(tmp_path: Path) -> None:
    floats = np.asarray(load_image(_mode_image(tmp_path / "f", "F")))
    assert floats[0, 0, 0] == 0 and floats[-1, -1, 0] == 255
    ints = np.asarray(load_image(_mode_image(tmp_path / "i", "I")))
    assert ints[-1, -1, 0] == round(40000 / 65535 * 255)


class Brightness:
    """Class ``dark`` for images darker than mid-grey, ``light`` otherwise; maps = brightness."""

    def __init__(self) -> None:
        self.info = ModelInfo(["dark", "light"], img_size=20, mean=ZERO, std=ONE)
        self.device = torch.device("cpu")

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        level = images.mean(dim=(1, 2, 3))
        logits = torch.stack([0.5 - level, level - 0.5], dim=1) * 20.0
        heat = images.mean(dim=1, keepdim=True).expand(-1, 2, -1, -1)
        return logits, heat


def test_eval_on_sixteen_bit_images_predicts_as_cam_does(tmp_path: Path) -> None:
    root = tmp_path / "data"
    paths = []
    for name, level in (("dark", 20000), ("light", 65000)):
        for i in range(2):
            paths.append(_grey16(root / "val" / name / f"{i}.png", level + 200 * i))
    (root / "train").mkdir()
    for name in ("dark", "light"):
        (root / "train" / name).mkdir()
    runner = Brightness()
    dataset = split_dataset(root, "val", build_transforms(20, False, ZERO, ONE))
    report = evaluate_classification(runner, dataset, batch_size=4)
    assert report["top1"] == 1.0  # read as white, every image would be "light": 0.5
    for path in paths:
        tensor = preprocess(load_image(path), 20, ZERO, ONE)
        predicted = int(runner(tensor[None])[0].argmax())
        assert runner.info.class_names[predicted] == path.parent.name


def test_make_splits_reads_sixteen_bit_like_cam(tmp_path: Path) -> None:
    root = tmp_path / "d"
    for name in ("a", "b"):
        for i in range(3):
            _grey16(root / "train" / name / f"{i}.png", 30000 + 1000 * i)
        _grey16(root / "val" / name / "0.png", 30000)
    splits = make_splits(root, "folder", 20, 2, mean=ZERO, std=ONE)
    image, _ = splits.test[0]  # type: ignore[misc]
    expected = build_transforms(20, False, ZERO, ONE)(load_image(root / "val" / "a" / "0.png"))
    assert torch.equal(image, expected) and image.max().item() < 0.5


def test_eval_names_unreadable_images_on_stderr_and_in_json(tmp_path: Path) -> None:
    from camtool.core.checkpoint import save_checkpoint
    from camtool.core.model import CAMNet

    root = tmp_path / "data"
    for name in ("a", "b"):
        for i in range(2):
            _grey16(root / "train" / name / f"{i}.png", 30000)
            _grey16(root / "val" / name / f"{i}.png", 30000)
    broken = root / "val" / "b" / "broken.png"
    broken.write_bytes(b"")
    model = tmp_path / "m.pt"
    save_checkpoint(model, CAMNet("resnet18", 2), class_names=["a", "b"], img_size=32)
    args = ["eval", "--model", str(model), "--data-dir", str(root), "--json", "--device", "cpu"]
    result = cli.invoke(app, [*args, "--metrics", "classification", "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["skipped"] == [{"path": str(broken), "error": "empty file"}]
    assert document["classification"]["skipped"] == 1
    assert f"skipped {broken}: empty file" in result.stderr


def test_training_and_eval_readers_keep_the_pixel_limit(tmp_path: Path) -> None:
    path = _grey16(tmp_path / "train" / "a" / "big.png", 30000)  # 24 x 20 = 480 pixels
    transform = build_transforms(16, False, ZERO, ONE)
    item = ImageFolderDataset(tmp_path, "train", transform, max_pixels=479)[0]
    assert isinstance(item, SkippedImage) and item.path == str(path)
    assert item.error.startswith("image too large (24x20 = 480 pixels, limit 479)")
    assert isinstance(ImageFolderDataset(tmp_path, "train", transform, max_pixels=480)[0], tuple)


def test_train_eval_and_batch_cam_list_the_same_image_files(tmp_path: Path) -> None:
    from camtool.batch.inputs import find_inputs

    folder = tmp_path / "train" / "a"
    folder.mkdir(parents=True)
    image = Image.fromarray(np.full((20, 24, 3), 128, np.uint8))
    for name in ("p.png", "g.GIF", "m.ppm", "j.jpeg", "w.webp"):
        image.save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"")
    transform = build_transforms(16, False, ZERO, ONE)
    listed = {path.name for path, _ in ImageFolderDataset(tmp_path, "train", transform).samples}
    found = {Path(item.path).name for item in find_inputs([folder], tmp_path / "out")}
    assert listed == found == {"p.png", "g.GIF", "m.ppm", "j.jpeg", "w.webp"}
