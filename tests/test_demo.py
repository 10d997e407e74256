"""``camtool demo``: data, training, test accuracy and maps, at a reduced size."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from camtool.cli import app
from camtool.data.synthetic import SHAPES
from camtool.demo import pipeline as demo_module
from camtool.demo.pipeline import DEMO_DEFAULTS, DemoConfig, run_demo
from camtool.errors import InputError

runner = CliRunner()
TINY = replace(
    DEMO_DEFAULTS,
    train_per_class=6,
    val_per_class=2,
    image_size=32,
    holdout=5,
    epochs=1,
    batch_size=8,
    num_cams=3,
    workers=0,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_demo_writes_data_model_and_maps(tmp_path: Path) -> None:
    stages: list[str] = []
    report = run_demo(tmp_path / "demo", TINY, device="cpu", on_stage=stages.append)
    root = tmp_path / "demo"
    assert (root / "data" / "boxes.csv").is_file() and (root / "data" / "val").is_dir()
    assert report.training.best_checkpoint == root / "checkpoints" / "best.pt"
    assert report.training.best_checkpoint.is_file() and report.training.curves_file.is_file()
    assert report.training.epochs_run == 1
    assert report.test.images == len(SHAPES) * TINY.val_per_class
    assert 0 <= report.test.accuracy <= 1
    assert len(report.cam_files) == 3 and report.cams_dir == root / "cams"
    classes = {path.name.split("_")[0] for path in report.cam_files}
    assert len(classes) == 3  # one map from each of three classes
    for path in report.cam_files:
        assert path.parent == root / "cams" and Image.open(path).format == "PNG"
    loc = report.localization
    assert loc is not None and loc["n_images"] == report.test.images
    for key in ("top1_loc", "gt_known_loc", "maxboxacc_v2"):
        assert 0 <= loc[key] <= 1
    assert loc["top1_loc"] <= loc["gt_known_loc"]
    baseline = loc["centre_box_baseline"]  # what a fixed box at the centre scores, for scale
    assert set(baseline) == {"gt_known_loc", "maxboxacc_v2"}
    assert all(0 <= v <= 1 for v in baseline.values())
    document = json.loads(json.dumps(report.to_dict()))
    assert document["test"]["images"] == report.test.images and document["seconds"] > 0
    assert len(stages) == 3 and stages[0].startswith("drawing")


def test_demo_command_json_and_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_module, "DEMO_DEFAULTS", TINY)
    target = tmp_path / "demo"
    for _ in range(2):  # a second run replaces the first
        result = runner.invoke(app, ["demo", "-o", str(target), "--device", "cpu", "--json"])
        assert result.exit_code == 0, result.output
        document = json.loads(result.stdout)
        assert set(document) == {
            "output_dir", "data_dir", "seconds", "test", "localization", "cams_dir",
            "cam_files", "training", "skipped",
        }  # fmt: skip
        assert document["output_dir"] == str(target) and document["training"]["epochs_run"] == 1
        best = document["training"]["checkpoints"]["best"]
        assert Path(best).is_file() and len(document["cam_files"]) == 3
        assert set(document["test"]) == {"accuracy", "loss", "images"}
        assert set(document["localization"]) >= {
            "top1_loc", "gt_known_loc", "maxboxacc_v2", "centre_box_baseline"
        }  # fmt: skip
    lines = (target / "checkpoints" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1


def test_demo_refuses_a_data_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "demo" / "data").mkdir(parents=True)
    (tmp_path / "demo" / "data" / "mine.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a camtool shapes dataset"):
        run_demo(tmp_path / "demo", TINY, device="cpu")
    assert (tmp_path / "demo" / "data" / "mine.txt").read_text() == "keep me"


def test_maps_are_spread_over_classes() -> None:
    samples = [(Path(f"{c}{i}.png"), c) for c in range(3) for i in range(3)]
    picked = demo_module._spread_over_classes(samples, 4)
    assert [label for _, label in picked] == [0, 1, 2, 0]
    assert demo_module._spread_over_classes(samples[:2], 5) == samples[:2]


def test_default_demo_trains_from_scratch_without_network(tmp_path: Path) -> None:
    settings = demo_module.demo_settings(tmp_path, DemoConfig())
    assert settings.model.pretrained is False and settings.model.arch == "resnet18"
    assert settings.dataset.data_dir == tmp_path / "data"
    assert settings.training.checkpoint_dir == tmp_path / "checkpoints"
