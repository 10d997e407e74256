"""``camtool train``: the training core, resuming, early stopping, DDP and the command."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler
from typer.testing import CliRunner

from camtool.choices import Optimizer, Scheduler
from camtool.cli import app
from camtool.cli._progress import TrainProgress
from camtool.data.synthetic import make_shapes_dataset
from camtool.errors import EXIT_INTERRUPTED, CamtoolError, ConfigError
from camtool.process import LOCK_NAME
from camtool.settings import Settings, TrainingSettings, load_settings
from camtool.training import loop as train_module
from camtool.training.checkpoints import (
    BEST_FILE,
    CURVES_FILE,
    LAST_FILE,
    METRICS_FILE,
    prepare_fresh_dir,
)
from camtool.training.loop import train
from camtool.training.optim import build_optimizer, build_scheduler
from camtool.training.reproducibility import EpochSampler, SeededItems, rng_state, set_rng_state
from camtool.training.types import BatchProgress, SilentObserver
from tests.conftest import tiny_train_settings

runner = CliRunner()
CLASSES = ("circle", "square")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes, 6 + 6 images of 32 px in train/ (4 held out), 1 + 1 in val/."""
    root = tmp_path_factory.mktemp("train_data") / "shapes"
    return make_shapes_dataset(
        root, train_per_class=6, val_per_class=1, image_size=32, seed=1, classes=CLASSES
    )


def settings_for(data: Path, checkpoints: Path, **training: Any) -> Settings:
    """:func:`tiny_train_settings`, with progress after every batch."""
    return tiny_train_settings(data, checkpoints, **{"log_every": 1, **training})


def read_checkpoint(path: Path) -> dict[str, Any]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(payload, dict)
    return payload


@pytest.fixture(scope="module")
def straight(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint folder of an uninterrupted two-epoch run."""
    folder = tmp_path_factory.mktemp("straight") / "ck"
    result = train(settings_for(shapes, folder))
    assert result.epochs_run == 2 and not result.stopped_early
    return folder


def assert_same_run(a: Path, b: Path) -> None:
    first, second = read_checkpoint(a / LAST_FILE), read_checkpoint(b / LAST_FILE)
    assert first["model_state"].keys() == second["model_state"].keys()
    for key, tensor in first["model_state"].items():
        assert torch.equal(tensor, second["model_state"][key]), key
    opt_a, opt_b = first["training"]["optimizer"]["state"], second["training"]["optimizer"]["state"]
    for index, state in opt_a.items():
        for name, value in state.items():
            assert torch.equal(value, opt_b[index][name]), (index, name)
    keys = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "skipped")
    history_a = [[h[k] for k in keys] for h in first["training"]["history"]]
    history_b = [[h[k] for k in keys] for h in second["training"]["history"]]
    assert history_a == history_b


def test_resume_after_an_epoch_ends_like_an_uninterrupted_run(
    shapes: Path, straight: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "ck"
    assert train(settings_for(shapes, folder, num_epochs=1)).epochs_run == 1
    result = train(settings_for(shapes, folder, num_epochs=2), resume=True)
    assert result.epochs_run == 2 and result.resumed_from == folder / LAST_FILE
    assert_same_run(straight, folder)
    lines = (folder / METRICS_FILE).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


class StopAt(SilentObserver):
    """Presses Ctrl-C (raises KeyboardInterrupt) after a given batch of a given epoch."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.where = (epoch, batch)

    def on_batch(self, progress: BatchProgress) -> None:
        if (progress.epoch, progress.batch) == self.where:
            raise KeyboardInterrupt


def test_ctrl_c_mid_epoch_saves_a_checkpoint_that_resumes_exactly(
    shapes: Path, straight: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "ck"
    settings = settings_for(shapes, folder)
    with pytest.raises(CamtoolError, match="interrupted; resume with camtool train --resume") as e:
        train(settings, observer=StopAt(epoch=2, batch=1))
    assert e.value.exit_code == EXIT_INTERRUPTED
    state = read_checkpoint(folder / LAST_FILE)["training"]
    assert (state["epoch"], state["batch"]) == (1, 1)  # one epoch and one batch done
    assert train(settings, resume=True).epochs_run == 2
    assert_same_run(straight, folder)


def test_loader_workers_do_not_change_the_run(shapes: Path, straight: Path, tmp_path: Path) -> None:
    train(settings_for(shapes, tmp_path / "ck", workers=2))
    assert_same_run(straight, tmp_path / "ck")  # same batches, same augmentation


def test_checkpoint_files_and_logs(straight: Path) -> None:
    names = {p.name for p in straight.iterdir()}
    assert {LAST_FILE, BEST_FILE, "epoch_002.pt", METRICS_FILE, CURVES_FILE} <= names
    assert "camtool-settings.toml" in names and "epoch_001.pt" not in names  # save_every = 2
    assert not [n for n in names if ".tmp" in n or (n.startswith(".") and n != LOCK_NAME)]
    training = read_checkpoint(straight / LAST_FILE)["training"]
    assert training["epoch"] == 2 and training["batch"] == 0
    assert set(training["rng"]) >= {"torch", "python", "numpy"}
    assert isinstance(training["rng"]["numpy"]["keys"], list)
    assert {"optimizer", "scheduler", "best_val_acc", "epochs_without_improvement"} <= set(training)
    rows = [json.loads(line) for line in (straight / METRICS_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    wanted = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}
    assert wanted | {"images_per_s", "skipped"} == set(rows[0])
    assert rows[0]["images_per_s"] > 0 and 0 <= rows[1]["val_acc"] <= 1
    assert Image.open(straight / CURVES_FILE).format == "PNG"


def test_rng_state_survives_a_weights_only_round_trip(tmp_path: Path) -> None:
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected


class Numbers(Dataset[tuple[torch.Tensor, int]]):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.rand(3), index


def test_epoch_order_depends_only_on_seed_and_epoch() -> None:
    def keys(epoch: int, skip: int = 0, seed: int = 0) -> list[tuple[int, int]]:
        inner: DistributedSampler[Any] = DistributedSampler(
            Numbers(), num_replicas=1, rank=0, shuffle=True, seed=seed
        )
        sampler = EpochSampler(inner, batch_size=4)
        sampler.set_epoch(epoch, skip)
        assert len(sampler) == 8 - skip  # whole batches only: 10 -> 8
        return list(sampler)

    first = keys(1)
    assert first == keys(1) and {e for e, _ in first} == {1} and len(set(first)) == 8
    assert first != keys(2) and first != keys(1, seed=1)
    assert keys(1, skip=4) == first[4:]


def test_augmentation_is_seeded_per_image_and_epoch() -> None:
    items = SeededItems(Numbers(), seed=3)
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    a = items[(1, 2)][0]
    assert torch.equal(torch.random.get_rng_state(), before)  # the global stream is untouched
    torch.manual_seed(123)
    assert torch.equal(items[(1, 2)][0], a)
    assert not torch.equal(items[(2, 2)][0], a) and not torch.equal(items[(1, 3)][0], a)


def scripted_accuracies(monkeypatch: pytest.MonkeyPatch, accuracies: list[float]) -> None:
    """Make the held-out evaluation report these accuracies, one per epoch (4 images each)."""
    queue: Iterator[float] = iter(accuracies)
    real = train_module.eval_sums

    def fake(model: Any, loader: Any, device: torch.device, **kwargs: Any) -> torch.Tensor:
        real(model, loader, device, **kwargs)
        accuracy = next(queue)
        return torch.tensor([4 * (1 - accuracy), 4 * accuracy, 4.0, 0.0], dtype=torch.float64)

    monkeypatch.setattr(train_module, "eval_sums", fake)


def test_early_stopping_on_held_out_accuracy(
    shapes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted_accuracies(monkeypatch, [0.5, 0.75, 0.75, 1.0, 1.0])
    settings = settings_for(shapes, tmp_path / "ck", num_epochs=5, early_stopping_patience=1)
    result = train(settings)
    assert result.stopped_early and result.epochs_run == 3 < 5
    assert (result.best_epoch, result.best_val_acc) == (2, 0.75)
    assert [m.val_acc for m in result.history] == [0.5, 0.75, 0.75]  # equal is no gain
    assert read_checkpoint(tmp_path / "ck" / BEST_FILE)["training"]["epoch"] == 2
    again = train(settings, resume=True)  # nothing left to do
    assert again.stopped_early and again.epochs_run == 3


def test_patience_zero_never_stops(
    shapes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted_accuracies(monkeypatch, [0.5, 0.25])
    result = train(settings_for(shapes, tmp_path / "ck", num_epochs=2))
    assert result.epochs_run == 2 and not result.stopped_early and result.best_epoch == 1


def test_optimizer_settings_reach_the_optimizer_and_resume_keeps_them(
    shapes: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "ck"
    settings = settings_for(
        shapes,
        folder,
        num_epochs=1,
        optimizer="sgd",
        learning_rate=0.05,
        momentum=0.8,
        weight_decay=0.01,
        scheduler="reduce_lr",
    )
    train(settings)
    group = read_checkpoint(folder / LAST_FILE)["training"]["optimizer"]["param_groups"][0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.05, 0.8, 0.01)
    # Resuming with only the epoch budget and folder given keeps the stored settings.
    bare = load_settings(None, {"training": {"num_epochs": 2, "checkpoint_dir": folder}})
    result = train(bare, resume=True)
    assert result.epochs_run == 2
    state = read_checkpoint(folder / LAST_FILE)
    assert state["settings"]["training"]["momentum"] == 0.8
    assert state["settings"]["dataset"]["data_dir"] == str(shapes)
    assert state["training"]["optimizer"]["param_groups"][0]["momentum"] == 0.8


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("sgd", torch.optim.SGD),
    ],
)
def test_build_optimizer(name: str, kind: type) -> None:
    config = TrainingSettings(optimizer=Optimizer(name), learning_rate=0.01, weight_decay=0.02)
    opt = build_optimizer(torch.nn.Linear(2, 2), config)
    assert type(opt) is kind
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["weight_decay"] == 0.02


def test_build_scheduler() -> None:
    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    cosine = build_scheduler(opt, TrainingSettings(scheduler=Scheduler.cosine, num_epochs=7))
    assert isinstance(cosine, torch.optim.lr_scheduler.CosineAnnealingLR) and cosine.T_max == 7
    plateau = build_scheduler(opt, TrainingSettings(scheduler=Scheduler.reduce_lr))
    assert isinstance(plateau, torch.optim.lr_scheduler.ReduceLROnPlateau)


def test_unreadable_images_are_skipped_counted_and_named(shapes: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(shapes, data)
    broken = data / "train" / "circle" / "broken.png"
    broken.write_bytes(b"not a png")
    # 13 images, 4 held out: 9 to fit in whole batches of 3, so the broken one is always met.
    result = train(settings_for(data, tmp_path / "ck", num_epochs=1, batch_size=3))
    assert result.history[0].skipped == 1
    reason = "not an image, or a format Pillow cannot read"
    assert result.skipped == [{"path": str(broken), "error": reason}]
    config = write_config(tmp_path / "c.toml")
    args = ["train", "--config", str(config), "--data-dir", str(data), "--epochs", "1"]
    args += ["--batch-size", "3", "--checkpoint-dir", str(tmp_path / "ck2"), "--json"]
    cli_result = runner.invoke(app, args)
    assert cli_result.exit_code == 0, cli_result.output
    assert json.loads(cli_result.stdout)["skipped"] == [{"path": str(broken), "error": reason}]
    assert f"skipped {broken}: {reason}" in cli_result.stderr


def test_a_new_run_does_not_overwrite_an_old_one(shapes: Path, straight: Path) -> None:
    with pytest.raises(CamtoolError, match="already holds a training run"):
        train(settings_for(shapes, straight))


def test_overwrite_clears_only_the_old_run_files(tmp_path: Path) -> None:
    for name in (LAST_FILE, BEST_FILE, "epoch_004.pt", METRICS_FILE, "notes.txt"):
        (tmp_path / name).write_text("x")
    prepare_fresh_dir(tmp_path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_num_classes_must_match_the_dataset(shapes: Path, tmp_path: Path) -> None:
    settings = settings_for(shapes, tmp_path / "ck")
    settings.model.num_classes = 5
    with pytest.raises(ConfigError, match="num_classes is 5 but the dataset has 2"):
        train(settings)


def test_resume_needs_a_checkpoint(shapes: Path, tmp_path: Path) -> None:
    with pytest.raises(CamtoolError, match="nothing to resume"):
        train(settings_for(shapes, tmp_path / "ck"), resume=True)


def test_distributed_two_processes_only_rank_0_writes(shapes: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[dataset]\nname = "folder"\nval_size = 4\n[model]\npretrained = false\n')
    logs = tmp_path / "logs"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMTOOL_", "RANK"))}
    env.pop("WORLD_SIZE", None)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "--log-dir", str(logs), "--redirects", "3", "-m", "camtool", "train",
        "--config", str(config), "--data-dir", str(shapes), "--epochs", "2",
        "--batch-size", "2", "--img-size", "32", "--workers", "0", "--device", "cpu",
        "--checkpoint-dir", str(tmp_path / "ck"), "--json",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = {p.parent.name: p.read_text() for p in logs.rglob("stdout.log")}
    errs = {p.parent.name: p.read_text() for p in logs.rglob("stderr.log")}
    assert out["1"] == "" and "training" not in errs["1"]
    document = json.loads(out["0"])
    assert document["world_size"] == 2 and document["epochs_run"] == 2
    lines = (tmp_path / "ck" / METRICS_FILE).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert read_checkpoint(tmp_path / "ck" / LAST_FILE)["training"]["world_size"] == 2


def test_distributed_error_is_printed_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMTOOL_", "RANK"))}
    env.pop("WORLD_SIZE", None)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "camtool", "train", "--data-dir", str(tmp_path / "nothing"), "--no-pretrained",
        "--device", "cpu", "--workers", "0", "--checkpoint-dir", str(tmp_path / "ck"),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert output.count("camtool: error: no dataset found in") == 1  # rank 0 only


@pytest.mark.parametrize(("rank", "lines"), [("0", 1), ("1", 0)])
def test_only_rank_0_prints_a_settings_error(
    monkeypatch: pytest.MonkeyPatch, rank: str, lines: int
) -> None:
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("CAMTOOL_TRAINING__NUM_EPOCHS", "0")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2  # every rank fails, so torchrun does too
    assert len(result.stderr.splitlines()) == lines


# ---------------------------------------------------------------------------------------------
# The command


def write_config(path: Path, extra: str = "") -> Path:
    path.write_text(
        '[dataset]\nname = "folder"\nval_size = 4\nimg_size = 32\n'
        "[model]\npretrained = false\n"
        f'[training]\nbatch_size = 4\nworkers = 0\ndevice = "cpu"\nlog_every = 1\n{extra}'
    )
    return path


def test_cli_train_json(shapes: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml")
    folder = tmp_path / "ck"
    args = ["train", "--config", str(config), "--data-dir", str(shapes), "--epochs", "1"]
    result = runner.invoke(app, [*args, "--checkpoint-dir", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {
        "best_val_acc", "best_epoch", "epochs_run", "num_epochs", "stopped_early", "seconds",
        "checkpoint_dir", "checkpoints", "metrics_file", "curves_file", "settings_file",
        "class_names", "device", "precision", "world_size", "resumed_from", "history", "skipped",
    }  # fmt: skip
    assert not re.search(r"\d\.\d{9,}", result.stdout)  # rounded: no float noise
    assert document["epochs_run"] == 1 and document["stopped_early"] is False
    assert document["best_epoch"] == 1 and 0 <= document["best_val_acc"] <= 1
    assert Path(document["checkpoints"]["best"]).is_file()
    assert Path(document["checkpoints"]["last"]) == folder / LAST_FILE
    assert document["class_names"] == list(CLASSES) and len(document["history"]) == 1
    saved = read_checkpoint(folder / LAST_FILE)["settings"]
    assert saved["model"]["pretrained"] is False  # config value kept: no flag given


def test_cli_default_val_size_works_on_a_small_folder(shapes: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml")
    text = config.read_text().replace("val_size = 4\n", "")  # the built-in default: 0.1
    config.write_text(text)
    args = ["train", "--config", str(config), "--data-dir", str(shapes), "--epochs", "1"]
    result = runner.invoke(app, [*args, "--checkpoint-dir", str(tmp_path / "ck")])
    assert result.exit_code == 0, result.output
    # 12 images of 2 classes: 10% is 1, raised to one of each class
    assert "training resnet18 on 10 images of 2 classes (2 held out)" in result.stderr
    result = runner.invoke(app, [*args, "--val-size", "12", "--checkpoint-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "dataset.val_size is 12, but train/ has 12 images" in result.stderr
    assert "--val-size 0.1" in result.stderr


def test_cli_table_and_progress(shapes: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml")
    args = ["train", "--config", str(config), "--data-dir", str(shapes), "--epochs", "1"]
    result = runner.invoke(app, [*args, "--checkpoint-dir", str(tmp_path / "ck")])
    assert result.exit_code == 0, result.output
    assert "best val accuracy" in result.stdout and "epoch   1" in result.stderr
    assert "\n\n" not in result.stderr and not result.stderr.startswith("\n")  # no bar residue


def test_cli_bad_config_key_is_exit_2_with_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", "learning_rat = 0.1\n")
    result = runner.invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "camtool: error: invalid settings (from "
        f"{config}, CAMTOOL_* env vars and flags): training.learning_rat: unknown key"
    ]


def test_cli_ctrl_c_exits_130_and_resume_finishes(
    shapes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "c.toml")
    folder = tmp_path / "ck"
    args = ["train", "--config", str(config), "--data-dir", str(shapes), "--epochs", "2"]
    args += ["--checkpoint-dir", str(folder)]

    def press_ctrl_c(self: TrainProgress, progress: BatchProgress) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(TrainProgress, "on_batch", press_ctrl_c)
        result = runner.invoke(app, args)
    assert result.exit_code == EXIT_INTERRUPTED
    assert result.stderr.strip().splitlines()[-1] == (
        f"camtool: error: interrupted; resume with camtool train --resume --checkpoint-dir {folder}"
    )
    assert read_checkpoint(folder / LAST_FILE)["training"]["batch"] == 1
    resumed = runner.invoke(app, ["train", "--resume", "--checkpoint-dir", str(folder), "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["epochs_run"] == 2


def test_cli_resume_without_checkpoint(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--resume", "--checkpoint-dir", str(tmp_path)])
    assert result.exit_code == 1 and "nothing to resume" in result.stderr


class PressCtrlC(SilentObserver):
    """Sends this process a real SIGINT during the first batch's report."""

    survived = False

    def on_batch(self, progress: BatchProgress) -> None:
        if (progress.epoch, progress.batch) == (1, 1):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the signal is handled here, between two bytecodes
                pass
            self.survived = True  # the first Ctrl-C only asks the loop to stop


def test_sigint_stops_cleanly_after_the_batch_in_progress(shapes: Path, tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT)
    observer = PressCtrlC()
    with pytest.raises(CamtoolError, match="interrupted") as caught:
        train(settings_for(shapes, tmp_path / "ck"), observer=observer)
    assert caught.value.exit_code == EXIT_INTERRUPTED and observer.survived
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    state = read_checkpoint(tmp_path / "ck" / LAST_FILE)["training"]
    assert (state["epoch"], state["batch"]) == (0, 1)
