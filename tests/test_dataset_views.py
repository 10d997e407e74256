"""Dataset views: ``cam --dataset --random/--index``, true classes in titles, JSON, manifest,
batch-cam's top-1 and the Python API, on a generated labelled folder."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from camtool.api import load_model
from camtool.batch.manifest import MANIFEST_CSV, MANIFEST_JSONL, read_rows
from camtool.cli import app
from camtool.core.checkpoint import save_checkpoint
from camtool.core.maps import CAMBatch
from camtool.data.datasets import build_transforms
from camtool.data.labels import true_class
from camtool.data.synthetic import make_shapes_dataset
from camtool.errors import ConfigError
from camtool.evaluation.data import split_dataset
from camtool.explain.files import map_title
from camtool.explain.render import WRONG_RGB, figure_png
from tests.conftest import make_photo

SHAPES = ["circle", "square", "triangle"]
VAL_SIZE = 3 * 3

runner = CliRunner()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 3-class labelled dataset (2 train, 3 val images per class, 32 px) and a tiny
    checkpoint that records it as its dataset."""
    from camtool.core.model import CAMNet

    base = tmp_path_factory.mktemp("views")
    root = make_shapes_dataset(
        base / "shapes", train_per_class=2, val_per_class=3, image_size=32, classes=SHAPES
    )
    torch.manual_seed(0)
    ckpt = save_checkpoint(
        base / "ckpt" / "tiny.pt",
        CAMNet("resnet18", 3),
        class_names=SHAPES,
        img_size=32,
        settings={"dataset": {"data_dir": str(root.absolute())}},
    )
    return root, ckpt


def cam(*args: str) -> tuple[int, dict[str, Any], str]:
    result = runner.invoke(app, ["cam", *args, "--device", "cpu", "--json"])
    document = json.loads(result.stdout) if result.exit_code == 0 else {}
    return result.exit_code, document, result.stderr


def test_random_with_a_seed_draws_the_same_samples(in_tmp: Path, shapes: tuple[Path, Path]) -> None:
    _, ckpt = shapes
    base = ["--dataset", "val", "--random", "3", "--model", str(ckpt), "--overwrite"]
    code, first, stderr = cam(*base, "--seed", "0", "-o", "a")
    assert code == 0
    _, again, _ = cam(*base, "--seed", "0", "-o", "b")
    _, other, _ = cam(*base, "--seed", "1", "-o", "c")
    picked = first["dataset"]["indices"]
    assert len(set(picked)) == 3 and again["dataset"]["indices"] == picked
    assert sorted(other["dataset"]["indices"]) != sorted(picked)
    assert first["dataset"]["seed"] == 0 and first["dataset"]["size"] == VAL_SIZE
    assert [image["index"] for image in first["images"]] == picked
    assert ", ".join(map(str, picked)) in stderr  # the chosen indices are said on stderr


def test_index_is_evals_index_and_carries_the_true_class(
    in_tmp: Path, shapes: tuple[Path, Path]
) -> None:
    root, ckpt = shapes
    code, doc, _ = cam("--dataset", "val", "--index", "4", "--index", "8", "-m", str(ckpt))
    assert code == 0
    evals = split_dataset(root, "val", build_transforms(32, False))  # eval's own order
    for image, index in zip(doc["images"], (4, 8), strict=True):
        path, label = evals.samples[index]
        assert image["input"] == str(path)
        assert (image["true_idx"], image["true_name"]) == (label, SHAPES[label])
        assert image["index"] == index and path.parent.name == SHAPES[label]


def test_index_beyond_the_dataset_is_one_line_naming_its_size(
    in_tmp: Path, shapes: tuple[Path, Path]
) -> None:
    _, ckpt = shapes
    result = runner.invoke(app, ["cam", "--dataset", "val", "--index", "9", "-m", str(ckpt)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{VAL_SIZE} images" in lines[0] and "Traceback" not in result.output


def test_images_and_dataset_together_are_refused(in_tmp: Path) -> None:
    photo = make_photo(in_tmp / "p.png")
    result = runner.invoke(app, ["cam", str(photo), "--dataset", "val", "--index", "0"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "camtool: error: give IMAGE files or --dataset, not both"


def test_a_folder_view_and_a_file_under_a_class_folder_know_their_class(
    in_tmp: Path, shapes: tuple[Path, Path]
) -> None:
    root, ckpt = shapes
    code, doc, _ = cam("--dataset", str(root / "train"), "--index", "5", "-m", str(ckpt))
    assert code == 0 and doc["images"][0]["true_name"] == "triangle"  # sorted: 2 per class
    labelled = root / "val" / "square" / "00001.png"
    code, doc, _ = cam(str(labelled), str(make_photo(in_tmp / "free.png")), "-m", str(ckpt))
    assert code == 0
    assert [(i["true_idx"], i["true_name"]) for i in doc["images"]] == [(1, "square"), (None, None)]
    assert true_class("val/square/sub/a.png", SHAPES) == 1
    assert true_class("pictures/a.png", SHAPES) is None


def _batch(probs: list[float]) -> CAMBatch:
    p = np.array([probs], dtype=np.float32)
    return CAMBatch(
        logits=np.log(p),
        probs=p,
        class_idx=np.array([[0]]),
        cams=np.zeros((1, 1, 2, 2)),
        input_hw=(64, 64),
    )


def test_titles_say_the_true_class_and_are_red_when_wrong() -> None:
    batch = _batch([0.2, 0.7, 0.1])
    assert map_title(batch, 0, 1, SHAPES, None) == ("square (p = 0.700)", False)
    assert map_title(batch, 0, 1, SHAPES, 1) == (
        "true: square | predicted: square (p = 0.700)",
        False,
    )
    title, wrong = map_title(batch, 0, 0, SHAPES, 0)
    assert (
        wrong and title == "true: circle | predicted: square (p = 0.700) | map: circle (p = 0.200)"
    )
    image = Image.new("RGB", (40, 40), (128, 128, 128))
    heat = np.linspace(0, 1, 1600, dtype=np.float32).reshape(40, 40)

    def red_pixels(wrong: bool) -> int:
        figure = Image.open(io.BytesIO(figure_png(image, heat, image, title, wrong=wrong)))
        top = np.asarray(figure.convert("RGB"))[:40]
        return int(np.all(np.abs(top.astype(int) - WRONG_RGB) < 40, axis=-1).sum())

    assert red_pixels(True) > 20 and red_pixels(False) == 0


def test_batch_cam_manifest_and_summary_carry_the_true_class(
    in_tmp: Path, shapes: tuple[Path, Path]
) -> None:
    root, ckpt = shapes
    make_photo(in_tmp / "loose" / "free.png")
    args = ["batch-cam", str(root / "val"), "loose", "-m", str(ckpt), "-o", "out", "-j", "0"]
    result = runner.invoke(app, [*args, "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    rows = list(read_rows(in_tmp / "out" / MANIFEST_JSONL))
    labelled = [r for r in rows if r["true_idx"] is not None]
    assert len(rows) == VAL_SIZE + 1 and len(labelled) == VAL_SIZE
    for row in labelled:
        assert SHAPES[row["true_idx"]] == row["true_name"] == Path(row["path"]).parent.name
    free = next(r for r in rows if r["path"].endswith("free.png"))
    assert free["true_idx"] is None and free["true_name"] is None
    right = sum(r["pred_idx"] == r["true_idx"] for r in labelled)
    assert summary["labelled"] == VAL_SIZE
    assert summary["top1"] == pytest.approx(right / VAL_SIZE, abs=1e-4)
    header = (in_tmp / "out" / MANIFEST_CSV).read_text().splitlines()[0].split(",")
    assert "true_idx" in header and "true_name" in header
    result = runner.invoke(app, [*args, "--device", "cpu"])  # the table: all done, top-1 still
    assert f"of {VAL_SIZE} labelled inputs" in result.stdout


def test_api_samples_explain_with_their_true_class(shapes: tuple[Path, Path]) -> None:
    root, ckpt = shapes
    model = load_model(ckpt, device="cpu")
    (sample,) = model.samples("val", index=7)
    path, label = split_dataset(root, "val", build_transforms(32, False)).samples[7]
    assert (sample.path, sample.true_idx, sample.true_name) == (path, label, SHAPES[label])
    drawn = model.samples("val", random=3, seed=0)
    assert [s.index for s in drawn] == [s.index for s in model.samples("val", random=3, seed=0)]
    result = model.explain(drawn)
    assert result.true_idx == [s.true_idx for s in drawn]
    assert result.true_names == [s.true_name for s in drawn]
    assert len(result.heatmaps) == 3 and result.heatmaps[0].shape[1:] == (32, 32)
    assert model.explain(Image.new("RGB", (32, 32))).true_idx == [None]
    with pytest.raises(ConfigError, match=f"{VAL_SIZE} images"):
        model.samples("val", index=VAL_SIZE)
