"""Issue 11, maps and boxes: a flat map points nowhere; boxes past the edge are clipped."""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from camtool.cli import app
from camtool.core.checkpoint import save_checkpoint
from camtool.core.localize import EMPTY_BOX, box_from_map, peak
from camtool.core.model import CAMNet
from camtool.data.boxes import load_boxes
from camtool.errors import InputError
from camtool.evaluation.localization_metrics import LocalizationAccumulator
from tests.conftest import TINY_CLASSES, make_photo

cli = CliRunner()


def test_a_flat_map_has_no_peak_and_no_box() -> None:
    flat = np.full((7, 9), 0.3)
    assert peak(flat) is None and box_from_map(flat) == EMPTY_BOX
    ramp = np.zeros((7, 9))
    ramp[2, 5] = 1.0
    assert peak(ramp) == (5, 2)


def test_flat_maps_never_localize() -> None:
    acc = LocalizationAccumulator()
    from camtool.core.localize import BoxXYXY

    acc.update([np.zeros((10, 10), dtype=np.float32)], [True], [[BoxXYXY(0, 0, 10, 10)]])
    result = acc.compute()
    assert result["gt_known_loc"] == 0.0 and result["maxboxacc_v2"] == 0.0


@pytest.fixture(scope="module")
def zero_class_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class model whose class 1 ("dog") has all-zero weights: its map is constant."""
    torch.manual_seed(0)
    model = CAMNet("resnet18", 3)
    with torch.no_grad():
        model.fc.weight[1].zero_()
    path = tmp_path_factory.mktemp("flat") / "m.pt"
    return save_checkpoint(path, model, class_names=TINY_CLASSES, img_size=32)


def test_cam_json_and_figure_say_the_map_is_flat(in_tmp: Path, zero_class_model: Path) -> None:
    # 160x40 -> a 128x32 input, a 1x4 map: "cat" varies; a 1x1 map would be flat for every class
    image = make_photo(in_tmp / "x.png", size=(160, 40))
    args = ["cam", str(image), "--model", str(zero_class_model), "--json", "--device", "cpu"]

    def figure_text(class_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        result = cli.invoke(app, [*args, "--class", class_name])
        assert result.exit_code == 0, result.output
        (entry,) = json.loads(result.stdout)["images"][0]["maps"]
        assert entry["files"] and entry["files"][0].endswith("_cam.png")
        with Image.open(entry["files"][0]) as figure:  # what the figure shows, as its PNG text
            return entry, dict(figure.info)

    entry, text = figure_text("dog")
    assert (entry["class_idx"], entry["peak"], entry["box"]) == (1, None, None)
    assert text["Title"].endswith("- flat map: no peak, no box")
    assert text["Description"] == "Original | CAM heatmap: flat | Overlay"
    entry, text = figure_text("cat")
    assert entry["peak"] is not None and entry["box"] is not None
    assert not text["Title"].endswith("no box")
    assert text["Description"] == "Original | CAM heatmap | Overlay"


def test_batch_cam_manifest_has_no_peak_for_a_flat_map(
    in_tmp: Path, zero_class_model: Path
) -> None:
    make_photo(in_tmp / "pics" / "x.png")
    args = ["batch-cam", str(in_tmp / "pics"), "-m", str(zero_class_model), "-o", "out"]
    result = cli.invoke(app, [*args, "--class", "dog", "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    (row,) = [
        json.loads(line) for line in (in_tmp / "out" / "manifest.jsonl").read_text().splitlines()
    ]
    assert row["status"] == "ok" and row["peak"] is None and row["box"] is None


def _dataset_with_voc(root: Path, xmax: int) -> Path:
    """The demo's shapes (32 px) with one VOC file whose box ends at ``xmax``."""
    from camtool.data.synthetic import make_shapes_dataset

    make_shapes_dataset(
        root,
        train_per_class=2,
        val_per_class=1,
        image_size=32,
        seed=0,
        classes=("circle", "square"),
    )
    first = sorted((root / "val" / "circle").iterdir())[0]
    image = first.rename(first.with_name("circle_one.png"))  # a stem no other image has
    voc = root / "ann" / f"{image.stem}.xml"
    voc.parent.mkdir()
    voc.write_text(
        f"<annotation><filename>{image.name}</filename><size><width>32</width>"
        "<height>32</height></size><object><bndbox><xmin>3</xmin><ymin>4</ymin>"
        f"<xmax>{xmax}</xmax><ymax>20</ymax></bndbox></object></annotation>"
    )
    return voc


def test_eval_clips_a_voc_box_past_the_edge_and_warns(in_tmp: Path) -> None:
    voc = _dataset_with_voc(in_tmp / "d", xmax=35)
    model = in_tmp / "m.pt"
    save_checkpoint(model, CAMNet("resnet18", 2), class_names=["circle", "square"], img_size=32)
    args = ["eval", "--model", str(model), "--data-dir", str(in_tmp / "d"), "--boxes"]
    args += [str(voc.parent), "--metrics", "localization", "--json", "--device", "cpu"]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["localization"]["n_images"] == 1
    assert f"{voc} line 1: box 2,3,35,20 extends past its 32x32 image" in result.stderr
    assert "clipped to 2,3,32,20" in result.stderr


def test_box_csv_with_a_bom_and_one_in_another_encoding(tmp_path: Path) -> None:
    csv_file = tmp_path / "boxes.csv"
    csv_file.write_bytes(codecs.BOM_UTF8 + b"path,x0,y0,x1,y1\r\nval/a/1.png,0,0,5,5\r\n")
    gt = load_boxes(csv_file, tmp_path)
    assert gt is not None and gt.n_boxes == 1
    csv_file.write_bytes("path,x0,y0,x1,y1\nval/a/é.png,0,0,5,5\n".encode("latin-1"))
    with pytest.raises(InputError, match="boxes.csv: cannot read text: not UTF-8"):
        load_boxes(csv_file, tmp_path)


def test_demo_report_names_every_unreadable_image_once() -> None:
    from types import SimpleNamespace

    from camtool.demo.pipeline import DemoReport

    bad = {"path": "data/train/a/x.png", "error": "empty file"}
    other = {"path": "data/val/b/y.png", "error": "not an image"}
    report = DemoReport(
        output_dir=Path("o"),
        data_dir=Path("d"),
        training=SimpleNamespace(skipped=[bad]),  # type: ignore[arg-type]
        test=SimpleNamespace(skipped_files=[other]),  # type: ignore[arg-type]
        cams_dir=Path("c"),
        localization={"skipped_files": [other]},
        cam_failures=[bad],
    )
    assert report.skipped == [bad, other]
