"""Progress where there is no terminal: plain lines on stderr, no ANSI codes, stdout clean, and
``--quiet`` silent, for train, eval, batch-cam, download and demo."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from camtool.cli import app
from camtool.cli._progress import ProgressReporter, TrainProgress
from camtool.training.types import BatchProgress, EpochMetrics, TrainPlan
from tests.conftest import make_photo

runner = CliRunner()
ANSI = re.compile(r"\x1b\[")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines_of(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_mode_follows_the_terminal_and_quiet() -> None:
    assert ProgressReporter("x", stream=Tty()).mode == "live"
    assert ProgressReporter("x", stream=io.StringIO()).mode == "lines"
    assert ProgressReporter("x", quiet=True, stream=Tty()).mode == "off"


def test_lines_every_n_items_and_at_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    with ProgressReporter("batch-cam", every=100, stream=io.StringIO()) as reporter:
        for done in range(0, 251, 10):
            reporter.update(done, 250)
        reporter.update(250, 250)  # a repeated end prints nothing more
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "camtool batch-cam: 100/250 images (40%)",
        "camtool batch-cam: 200/250 images (80%)",
        "camtool batch-cam: 250/250 images (100%)",
    ]
    assert "ETA" in lines[0] and "ETA" not in lines[-1] and captured.out == ""


def test_bytes_every_tenth(capsys: pytest.CaptureFixture[str]) -> None:
    with ProgressReporter("download", unit="bytes", fraction=0.1, stream=io.StringIO()) as reporter:
        for done in range(0, 10_000_001, 250_000):
            reporter.update(done, 10_000_000, "downloading imagenette-160")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("camtool download: downloading imagenette-160 1.0/10.0 MB (10%)")
    assert lines[-1].startswith("camtool download: downloading imagenette-160 10.0/10.0 MB (100%)")


def test_a_line_every_30_seconds_when_items_are_slow(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("camtool.cli._progress.time.monotonic", lambda: clock[0])
    with ProgressReporter("eval", every=100, stream=io.StringIO()) as reporter:
        for done in range(1, 8):
            clock[0] += 10.0
            reporter.update(done, 50, "faithfulness")
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "camtool eval: faithfulness 4/50 images (8%)",  # 30 s after the first item
        "camtool eval: faithfulness 7/50 images (14%)",
    ]
    assert lines[0].endswith(", 0.1 images/s, ETA 5m45s")


def test_quiet_prints_only_what_must_show(capsys: pytest.CaptureFixture[str]) -> None:
    with ProgressReporter("batch-cam", quiet=True, every=1) as reporter:
        reporter.update(5, 5)
        reporter.message("a note")
        reporter.message("camtool: error: x.png: broken", always=True)
    assert capsys.readouterr().err == "camtool: error: x.png: broken\n"


def test_batch_cam_without_terminal(tmp_path: Path, tiny_checkpoint: Path) -> None:
    for i in range(3):
        make_photo(tmp_path / "pics" / f"{i}.png", seed=i)
    (tmp_path / "pics" / "broken.png").write_bytes(b"not a png")
    args = ["batch-cam", str(tmp_path / "pics"), "-m", str(tiny_checkpoint), "-j", "0"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "o1"), "--json"])
    assert result.exit_code == 3
    json.loads(result.stdout)  # stdout holds the one JSON document only
    assert not ANSI.search(result.stderr)
    assert lines_of(result.stderr, "camtool batch-cam: ")[-1].startswith(
        "camtool batch-cam: 4/4 images (100%)"
    )
    (error,) = lines_of(result.stderr, "camtool: error: ")
    assert "broken.png" in error
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "o2"), "--quiet"])
    assert result.exit_code == 3 and result.stdout == ""
    assert [line for line in result.stderr.splitlines() if "broken.png" not in line] == []


def _fake_train(settings: Any, resume: Any, observer: Any, **_: Any) -> Any:
    _train_events(observer)
    return SimpleNamespace(is_main=True, skipped=[], to_dict=lambda: {"epochs_run": 2})


def _train_events(observer: Any) -> None:
    observer.on_start(
        TrainPlan(
            num_epochs=2,
            start_epoch=1,
            batches_per_epoch=3,
            train_images=12,
            val_images=4,
            class_names=["a", "b"],
            arch="resnet18",
            device="cpu",
            precision="fp32",
            world_size=1,
            checkpoint_dir=Path("ck"),
        )
    )
    for epoch in (1, 2):
        observer.on_epoch_start(epoch, 3, 0)
        for batch in (1, 2, 3):
            observer.on_batch(BatchProgress(epoch, batch, 3, 0.5, 0.75, 40.0))
        observer.on_validate(epoch)
        observer.on_epoch_end(EpochMetrics(epoch, 0.5, 0.75, 0.6, 0.5, 1e-3, 1.5, 40.0, 0))


@pytest.mark.parametrize("quiet", [False, True])
def test_train_lines_per_batch_and_epoch(monkeypatch: pytest.MonkeyPatch, quiet: bool) -> None:
    monkeypatch.setattr("camtool.training.loop.train", _fake_train)
    result = runner.invoke(app, ["train", "--json", *(["--quiet"] if quiet else [])])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"epochs_run": 2}
    if quiet:
        assert result.stderr == ""
        return
    assert not ANSI.search(result.stderr)
    lines = result.stderr.splitlines()
    assert lines[0].startswith("training resnet18 on 12 images of 2 classes")
    assert lines[1] == "camtool train: epoch 1/2 batch 1/3  loss 0.500 acc 75.0% 40 img/s"
    assert lines[4] == "camtool train: epoch 1/2 validating"
    assert lines[5].startswith("epoch   1  train loss 0.5000")
    assert len(lines) == 1 + 2 * 5


def test_eval_download_and_demo_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def fake_eval(model: Any, settings: Any, options: Any, progress: Any, **_: Any) -> Any:
        for done in range(0, 201, 50):
            progress("localization", done, 200)
        return SimpleNamespace(skipped=[], notes=[], to_dict=lambda: {"ok": True})

    def fake_download(*args: Any, progress: Any, **kwargs: Any) -> Any:
        for done in range(0, 1001, 100):
            progress(done, 1000)
        return SimpleNamespace(
            dataset_dir=tmp_path,
            archive=None,
            downloaded_bytes=1000,
            resumed_from=0,
            already_present=False,
        )

    def fake_demo(output_dir: Any, device: Any, observer: Any, on_stage: Any, **_: Any) -> Any:
        on_stage("drawing the shapes dataset")
        return SimpleNamespace(skipped=[], to_dict=lambda: {"ok": True})

    monkeypatch.setattr("camtool.evaluation.evaluate.run_eval", fake_eval)
    monkeypatch.setattr("camtool.data.download.download_dataset", fake_download)
    monkeypatch.setattr("camtool.demo.pipeline.run_demo", fake_demo)
    commands = {
        "eval": (["eval", "-m", "m.pt", "--json"], "camtool eval: localization 200/200 images"),
        "download": (["download", "--json"], "camtool download: downloading imagenette-160 "),
        "demo": (["demo", "--json"], "camtool demo: drawing the shapes dataset"),
    }
    for name, (args, expected) in commands.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (name, result.output)
        json.loads(result.stdout)
        assert expected in result.stderr and not ANSI.search(result.stderr), name
        quiet = runner.invoke(app, [*args, "--quiet"])
        assert quiet.exit_code == 0 and quiet.stderr == "", name
    download = runner.invoke(app, ["download", "--json"])
    assert len(lines_of(download.stderr, "camtool download: ")) == 10  # every 10%


def test_train_on_a_terminal_shows_bars_and_epoch_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with ProgressReporter("train", stream=Tty()) as reporter:
        assert reporter.live
        _train_events(TrainProgress(reporter))
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert lines[0].startswith("training resnet18") and len(lines) == 3  # batches: in the bars
    assert [line.split()[:2] for line in lines[1:]] == [["epoch", "1"], ["epoch", "2"]]


def test_json_on_a_terminal_shows_no_progress(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    monkeypatch.setattr("camtool.cli._progress._stderr_is_terminal", lambda: True)
    monkeypatch.setattr("camtool.training.loop.train", _fake_train)

    def fake_demo(output_dir: Any, device: Any, observer: Any, on_stage: Any, **_: Any) -> Any:
        on_stage("drawing the shapes dataset")
        _train_events(observer)
        return SimpleNamespace(skipped=[], to_dict=lambda: {"ok": True})

    monkeypatch.setattr("camtool.demo.pipeline.run_demo", fake_demo)
    make_photo(tmp_path / "pics" / "a.png")
    batch = ["batch-cam", str(tmp_path / "pics"), "-m", str(tiny_checkpoint), "-j", "0"]
    for args in (["train"], ["demo"], [*batch, "-o", str(tmp_path / "out")]):
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, (args, result.output)
        json.loads(result.stdout)
        assert result.stderr == "", args
