"""``camtool eval``: metric wiring on cases with known answers, the report, and the command."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor
from typer.testing import CliRunner

from camtool.cli import app
from camtool.core.checkpoint import save_checkpoint
from camtool.core.model import CAMNet
from camtool.core.runner import ModelInfo
from camtool.core.upsample import CellGeometry
from camtool.data.datasets import build_transforms
from camtool.data.synthetic import make_shapes_dataset
from camtool.errors import ConfigError, InputError
from camtool.evaluation.evaluate import (
    EvalOptions,
    evaluate_classification,
    evaluate_faithfulness,
    evaluate_localization,
    parse_metric_groups,
    run_eval,
    split_dataset,
)
from camtool.settings import load_settings

cli = CliRunner()

SQUARE = (20, 16)  # width, height of the white square in every image


def squares_dataset(root: Path, per_class: int = 4) -> Path:
    """Two classes of black images with one white square each, landscape and portrait mixed.

    ``boxes.csv`` holds each square's box; the class says nothing about the image (the stub
    models below decide what is predicted).
    """
    rows = ["path,x0,y0,x1,y1"]
    for split in ("train", "val"):
        for c, name in enumerate(("a", "b")):
            for i in range(per_class):
                width, height = (64, 48) if i % 2 == 0 else (48, 64)
                x0, y0 = 4 + 6 * i + 3 * c, 5 + 4 * i
                pixels = np.zeros((height, width, 3), dtype=np.uint8)
                pixels[y0 : y0 + SQUARE[1], x0 : x0 + SQUARE[0]] = 255
                path = root / split / name / f"{name}{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(path)
                rows.append(
                    f"{split}/{name}/{path.name},{x0},{y0},{x0 + SQUARE[0]},{y0 + SQUARE[1]}"
                )
    (root / "boxes.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


class StubRunner:
    """Logits favour class ``a`` (1 vs 0); every class's map is the image's brightness.

    With ``invert`` the map is the darkness instead, so it points away from the square. The
    input size equals the images' shorter side, so no resizing blurs the map, and the map has
    one cell per input pixel (output stride 1).
    """

    def __init__(self, invert: bool = False) -> None:
        self.info = ModelInfo(
            ["a", "b"],
            img_size=48,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            output_stride=1,
            geometry=CellGeometry((1, 1), (0.0, 0.0)),  # the map is the input itself
        )
        self.device = torch.device("cpu")
        self.invert = invert
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        self.shapes.append(tuple(images.shape))
        heat = images.mean(dim=1)
        heat = -heat if self.invert else heat
        logits = torch.tensor([[1.0, 0.0]]).expand(images.shape[0], 2)
        return logits, torch.stack([heat, heat], dim=1)


class BrightnessModel(StubRunner):
    """Class ``a``'s logit grows with the brightness of the square: deleting it hurts."""

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        _, cams = super().__call__(images)
        score = images.mean(dim=(1, 2, 3)) * 40.0
        return torch.stack([score, torch.zeros_like(score)], dim=1), cams


@pytest.fixture
def squares(tmp_path: Path) -> Path:
    return squares_dataset(tmp_path / "squares")


def test_parse_metric_groups() -> None:
    assert parse_metric_groups(None) is None
    assert parse_metric_groups(["classification, faithfulness"]) == {
        "classification",
        "faithfulness",
    }
    assert parse_metric_groups(["localization", "classification"]) == {
        "localization",
        "classification",
    }
    assert parse_metric_groups("all") == {"classification", "localization", "faithfulness"}
    with pytest.raises(ConfigError, match="unknown metric group 'accuracy'"):
        parse_metric_groups("accuracy")


def test_maps_on_the_box_localize_perfectly(squares: Path) -> None:
    stub = StubRunner()
    loc = evaluate_localization(stub, squares, "val", None, batch_size=3)
    assert loc["n_images"] == 8 and loc["n_without_boxes"] == 0
    assert loc["gt_known_loc"] == 1.0 and loc["maxboxacc_v2"] == 1.0
    assert loc["top1_loc"] == 0.5  # class a is always predicted: right on half the images
    # landscape (48x64 input) and portrait (64x48) images are never mixed in one batch
    assert {s[2:] for s in stub.shapes} == {(48, 64), (64, 48)}
    assert all(s[0] <= 3 for s in stub.shapes)


def test_maps_off_the_box_never_localize(squares: Path) -> None:
    loc = evaluate_localization(StubRunner(invert=True), squares, "val", None, batch_size=8)
    assert loc["gt_known_loc"] == 0.0 and loc["top1_loc"] == 0.0
    assert loc["maxboxacc_v2"] == 0.0


def test_voc_boxes_matched_by_stem(squares: Path, tmp_path: Path) -> None:
    ann = tmp_path / "ann"
    ann.mkdir()
    for line in (squares / "boxes.csv").read_text().splitlines()[1:]:
        path, x0, y0, x1, y1 = line.split(",")
        if not path.startswith("val/"):
            continue
        stem = Path(path).stem
        (ann / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}</filename><object><bndbox><xmin>{int(x0) + 1}</xmin>"
            f"<ymin>{int(y0) + 1}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
            "</annotation>"
        )
    loc = evaluate_localization(StubRunner(), squares, "val", ann, batch_size=4)
    assert loc["gt_known_loc"] == 1.0 and loc["boxes"] == str(ann)


def test_partial_boxes_count_images_without(squares: Path) -> None:
    lines = (squares / "boxes.csv").read_text().splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if line.startswith("val/a/")]
    (squares / "boxes.csv").write_text("\n".join(kept) + "\n")
    loc = evaluate_localization(StubRunner(), squares, "val", None)
    assert loc["n_images"] == 4 and loc["n_without_boxes"] == 4 and loc["top1_loc"] == 1.0


def test_box_past_the_edge_is_clipped_and_one_wholly_outside_refused(squares: Path) -> None:
    with open(squares / "boxes.csv", "a") as f:
        f.write("val/b/b1.png,0,0,49,10\n")  # b1 is 48 wide
    loc = evaluate_localization(StubRunner(), squares, "val", None)
    assert loc["n_images"] == 8
    assert loc["notes"] == [
        f"{squares / 'boxes.csv'} line 18: box 0,0,49,10 extends past its 48x64 image "
        f"{squares / 'val' / 'b' / 'b1.png'}; clipped to 0,0,48,10"
    ]
    with open(squares / "boxes.csv", "a") as f:
        f.write("val/b/b1.png,50,0,60,10\n")
    with pytest.raises(InputError, match=r"boxes\.csv line 19: box 50,0,60,10 lies wholly"):
        evaluate_localization(StubRunner(), squares, "val", None)


def test_classification_against_hand_computed_figures(squares: Path) -> None:
    stub = StubRunner()
    dataset = split_dataset(squares, "val", build_transforms(48, False, (0, 0, 0), (1, 1, 1)))
    c = evaluate_classification(stub, dataset, batch_size=3, mistakes=2)
    p_a = math.exp(1) / (math.exp(1) + 1)  # softmax of (1, 0)
    assert c["n_images"] == 8 and c["top1"] == 0.5 and c["top5"] == 1.0 and c["top5_k"] == 2
    assert c["loss"] == pytest.approx((-math.log(p_a) - math.log(1 - p_a)) / 2, abs=1e-6)
    assert c["confusion_matrix"] == [[4, 0], [4, 0]]
    a, b = c["per_class"]
    assert (a["precision"], a["recall"], a["support"]) == (0.5, 1.0, 4)
    assert a["f1"] == pytest.approx(2 / 3) and (b["precision"], b["recall"], b["f1"]) == (0, 0, 0)
    assert c["macro_f1"] == pytest.approx(1 / 3)
    assert len(c["mistakes"]) == 2
    for m in c["mistakes"]:
        assert (m["true"], m["predicted"]) == ("b", "a") and m["prob"] == pytest.approx(p_a)
        assert Path(m["path"]).parent.name == "b"


def test_faithfulness_prefers_maps_on_the_evidence(squares: Path) -> None:
    dataset = split_dataset(squares, "val", build_transforms(48, False, (0, 0, 0), (1, 1, 1)))
    good = evaluate_faithfulness(BrightnessModel(), dataset, max_images=4, batch_size=16)
    bad = evaluate_faithfulness(BrightnessModel(invert=True), dataset, max_images=4, batch_size=16)
    assert good["n_images"] == 4 and good["steps"] == 16
    assert good["deletion_auc"] < bad["deletion_auc"]
    assert good["insertion_auc"] > bad["insertion_auc"]
    for figures in (good, bad):
        assert 0 <= figures["deletion_auc"] <= 1 and 0 <= figures["insertion_auc"] <= 1
        assert 0 <= figures["average_drop"] <= 100
        assert 0 <= figures["increase_in_confidence"] <= 100


# --------------------------------------------------------------------------- the whole command


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny shapes dataset (boxes.csv included) and an untrained 3-class checkpoint for it."""
    root = tmp_path_factory.mktemp("eval") / "shapes"
    classes = ("circle", "square", "triangle")
    make_shapes_dataset(root, train_per_class=1, val_per_class=2, image_size=32, classes=classes)
    torch.manual_seed(0)
    ckpt = root.parent / "tiny.pt"
    save_checkpoint(
        ckpt,
        CAMNet("resnet18", 3),
        class_names=list(classes),
        img_size=32,
        settings={"dataset": {"data_dir": str(root)}},
    )
    return root, ckpt


def eval_json(*args: str) -> tuple[int, dict, str]:
    result = cli.invoke(app, ["eval", *args, "--workers", "0", "--json"])
    doc = json.loads(result.stdout) if result.exit_code == 0 else {}
    return result.exit_code, doc, result.stderr


def test_cli_json_report_and_files(in_tmp: Path, shapes: tuple[Path, Path]) -> None:
    root, ckpt = shapes
    code, doc, _ = eval_json(
        "-m", str(ckpt), "--data-dir", str(root), "--faithfulness-images", "1", "-o", "out"
    )
    assert code == 0
    assert set(doc) == {
        "model", "device", "dataset", "split", "classes", "output_dir", "upsample",
        "cell_geometry", "files", "classification", "localization", "faithfulness", "notes",
        "skipped",
    }  # fmt: skip
    assert not re.search(r"\d\.\d{9,}", json.dumps(doc))  # rounded: no float noise
    assert doc["split"] == "val" and doc["classes"] == ["circle", "square", "triangle"]
    c, loc, faith = doc["classification"], doc["localization"], doc["faithfulness"]
    assert c["n_images"] == 6 and 0 <= c["top1"] <= c["top5"] == 1.0 and c["loss"] > 0
    assert np.asarray(c["confusion_matrix"]).sum() == 6 and len(c["per_class"]) == 3
    assert len(c["mistakes"]) == round(6 * (1 - c["top1"]))
    assert loc["n_images"] == 6 and loc["boxes"] == str(root / "boxes.csv")
    for key in ("top1_loc", "gt_known_loc", "maxboxacc_v2"):
        assert 0 <= loc[key] <= 1
    assert loc["top1_loc"] <= loc["gt_known_loc"]
    assert set(loc["maxboxacc_by_iou"]) == {"0.3", "0.5", "0.7"}
    centre = loc["centre_box_baseline"]  # the map-free reference, on the same six images
    assert set(centre) == {"gt_known_loc", "maxboxacc_v2"}
    assert all(0 <= v <= 1 for v in centre.values())
    assert faith["n_images"] == 1 and 0 <= faith["deletion_auc"] <= 1
    # the placement and the protocol are recorded (defaults: aligned cells, camtool's protocol)
    assert doc["upsample"] == loc["upsample"] == faith["upsample"] == "aligned"
    assert doc["cell_geometry"] == {"stride": [32, 32], "offset": [0.0, 0.0]}
    assert loc["protocol"] == "camtool"
    out = in_tmp / "out"
    assert json.loads((out / "metrics.json").read_text()) == doc
    assert Image.open(out / "confusion_matrix.png").format == "PNG"
    if c["mistakes"]:
        assert Image.open(out / "mistakes.png").format == "PNG"
    assert (out / "camtool-settings.toml").is_file()


def test_cli_protocol_and_upsample_switches(in_tmp: Path, shapes: tuple[Path, Path]) -> None:
    root, ckpt = shapes
    args = ["-m", str(ckpt), "--data-dir", str(root), "--metrics", "localization"]
    code, doc, _ = eval_json(*args, "--protocol", "wsol", "--upsample", "conventional")
    assert code == 0
    assert doc["upsample"] == doc["localization"]["upsample"] == "conventional"
    assert doc["localization"]["protocol"] == "wsol"
    assert (in_tmp / "eval_results" / "camtool-settings.toml").read_text().count(
        'upsample = "conventional"'
    ) == 1


def test_wsol_protocol_on_perfect_maps(squares: Path) -> None:
    # The stub's map is the square itself: its contour's box (x0, y0, x0 + w, y0 + h) has the
    # very numbers of the ground truth, so every threshold scores IoU 1 under the +1 rule too.
    loc = evaluate_localization(StubRunner(), squares, "val", None, protocol="wsol")
    assert loc["protocol"] == "wsol" and loc["maxboxacc_v2"] == 1.0


def test_cli_tables_and_default_dataset_from_checkpoint(
    in_tmp: Path, shapes: tuple[Path, Path]
) -> None:
    _, ckpt = shapes  # no --data-dir: the checkpoint's recorded dataset is used
    result = cli.invoke(
        app, ["eval", "-m", str(ckpt), "--workers", "0", "--metrics", "classification"]
    )
    assert result.exit_code == 0, result.stderr
    assert "top-1 accuracy" in result.stdout and "per class" in result.stdout
    assert "confusion matrix" in result.stdout and "MaxBoxAccV2" not in result.stdout
    assert (in_tmp / "eval_results" / "metrics.json").is_file()


def test_moved_project_still_finds_its_data(
    in_tmp: Path, shapes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    root, ckpt = shapes
    project = in_tmp / "old" / "project"  # trained here with relative settings
    shutil.copytree(root, project / "data")
    stored = {"dataset": {"data_dir": "data"}, "training": {"checkpoint_dir": "runs/a"}}
    payload = torch.load(ckpt, weights_only=True)
    payload["settings"] = stored
    (project / "runs" / "a").mkdir(parents=True)
    torch.save(payload, project / "runs" / "a" / "best.pt")
    shutil.move(project, in_tmp / "moved")
    (in_tmp / "elsewhere").mkdir()
    monkeypatch.chdir(in_tmp / "elsewhere")
    moved_ckpt = in_tmp / "moved" / "runs" / "a" / "best.pt"
    code, doc, err = eval_json("-m", str(moved_ckpt), "--metrics", "classification")
    assert code == 0, err
    assert doc["dataset"] == str(in_tmp / "moved" / "data")

    shutil.rmtree(in_tmp / "moved" / "data")
    result = cli.invoke(app, ["eval", "-m", str(moved_ckpt), "--workers", "0"])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert str(in_tmp / "moved" / "data") in line and "--data-dir DIR" in line
    assert line.startswith(f"camtool: error: no dataset found for {moved_ckpt}: tried data, ")


def test_training_records_the_data_folder_absolute() -> None:
    from camtool.settings import load_settings
    from camtool.training.checkpoints import stored_settings

    stored = stored_settings(load_settings(None, {"dataset": {"data_dir": "data"}}))
    assert stored["dataset"]["data_dir"] == str(Path("data").absolute())


def test_cli_corrupt_box_file_is_one_line_error(in_tmp: Path, shapes: tuple[Path, Path]) -> None:
    root, ckpt = shapes
    bad = in_tmp / "bad.csv"
    bad.write_text("path,x0,y0,x1,y1\nval/circle/00000.png,1,2,oops,4\n")
    result = cli.invoke(
        app, ["eval", "-m", str(ckpt), "--data-dir", str(root), "--boxes", str(bad), "--json"]
    )
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.csv line 2: x1 is not a number" in lines[0]


def test_cli_refuses_xml_with_entities(in_tmp: Path, shapes: tuple[Path, Path]) -> None:
    root, ckpt = shapes
    ann = in_tmp / "ann"
    ann.mkdir()
    (ann / "x.xml").write_text(
        '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        "<annotation><filename>&lol2;</filename></annotation>"
    )
    result = cli.invoke(app, ["eval", "-m", str(ckpt), "--data-dir", str(root), "--boxes", "ann"])
    assert result.exit_code == 1 and "refusing XML with a DOCTYPE or ENTITY" in result.stderr


def test_cli_boxes_matching_nothing(in_tmp: Path, shapes: tuple[Path, Path]) -> None:
    root, ckpt = shapes
    (in_tmp / "b.csv").write_text("path,x0,y0,x1,y1\nelsewhere.png,0,0,4,4\n")
    result = cli.invoke(app, ["eval", "-m", str(ckpt), "--data-dir", str(root), "--boxes", "b.csv"])
    assert result.exit_code == 1 and "names any of the 6 images" in result.stderr


def test_cli_bad_metrics_and_localization_without_boxes(
    in_tmp: Path, shapes: tuple[Path, Path], tmp_path: Path
) -> None:
    root, ckpt = shapes
    result = cli.invoke(app, ["eval", "-m", str(ckpt), "--metrics", "speed"])
    assert result.exit_code == 2 and "unknown metric group 'speed'" in result.stderr
    bare = tmp_path / "bare"
    for split in ("train", "val"):
        for name in ("circle", "square", "triangle"):
            (bare / split / name).mkdir(parents=True)
            src = next((root / split / name).iterdir())
            (bare / split / name / src.name).write_bytes(src.read_bytes())
    result = cli.invoke(
        app, ["eval", "-m", str(ckpt), "--data-dir", str(bare), "--metrics", "localization"]
    )
    assert result.exit_code == 1 and "localization needs boxes" in result.stderr
    code, doc, _ = eval_json("-m", str(ckpt), "--data-dir", str(bare), "--faithfulness-images", "1")
    assert code == 0 and doc["localization"] is None and doc["faithfulness"] is not None
    assert doc["notes"] == [
        "localization skipped: no boxes (give --boxes, or put boxes.csv at the dataset root)"
    ]


def test_classes_must_fit_the_dataset(in_tmp: Path, shapes: tuple[Path, Path]) -> None:
    root, _ = shapes
    other = in_tmp / "other.pt"
    save_checkpoint(other, CAMNet("resnet18", 3), class_names=["x", "y", "z"], img_size=32)
    settings = load_settings(None, {"dataset": {"data_dir": str(root)}})
    with pytest.raises(Exception, match="are not the class folders"):
        run_eval(other, settings, EvalOptions(metrics=frozenset({"classification"})))


def test_eval_help_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom camtool.cli import app\n"
        "try:\n    app(['eval', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('torch', 'matplotlib') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--faithfulness-images" in out.stdout and "HEAVY []" in out.stdout


def test_unreadable_images_are_skipped_and_counted(squares: Path) -> None:
    (squares / "val" / "b" / "b3.png").write_bytes(b"not a png")
    dataset = split_dataset(squares, "val", build_transforms(48, False, (0, 0, 0), (1, 1, 1)))
    c = evaluate_classification(StubRunner(), dataset, batch_size=4)
    assert (c["n_images"], c["skipped"]) == (7, 1)
    loc = evaluate_localization(StubRunner(), squares, "val", None, batch_size=4)
    assert (loc["n_images"], loc["skipped"], loc["gt_known_loc"]) == (7, 1, 1.0)


def _blank_margins(png: bytes) -> tuple[int, int, int, int]:
    """Rows/columns of white at the top, bottom, left and right of a PNG."""
    import io

    ink = np.asarray(Image.open(io.BytesIO(png)).convert("L")) < 250
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return (
        int(rows[0]),
        int(ink.shape[0] - 1 - rows[-1]),
        int(cols[0]),
        int(ink.shape[1] - 1 - cols[-1]),
    )


def test_figures_have_no_empty_band_and_no_cut_title(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from camtool.core.checkpoint import load_checkpoint
    from camtool.core.torch_runner import TorchRunner
    from camtool.evaluation.classification import mistakes_png
    from camtool.explain.render import figure_png, overlay
    from tests.conftest import make_photo

    runner = TorchRunner(load_checkpoint(tiny_checkpoint), torch.device("cpu"))
    photo = make_photo(tmp_path / "m.png", (64, 64))
    one = [{"path": str(photo), "true": "cat", "predicted": "dog", "prob": 0.9}]
    png = mistakes_png(runner, one, 0.5, "jet")
    assert png is not None
    margins = _blank_margins(png)  # a title cut at the edges would leave 0 on both sides
    assert all(1 <= m <= 15 for m in margins), margins

    image = Image.open(photo).convert("RGB")
    heat = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    png = figure_png(image, heat, overlay(image, heat), "dog (p = 0.900)")
    margins = _blank_margins(png)  # the demo's figure: no empty band at the bottom
    assert all(1 <= m <= 15 for m in margins), margins
