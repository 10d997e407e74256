"""``camtool demo``: draw the shapes dataset into ``DIR/data``, train a ResNet-18 from scratch
into ``DIR/checkpoints``, test ``best.pt`` on ``val/`` and write maps of some of it to ``DIR/cams``
(as ``camtool cam`` does), offline, in a few CPU minutes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camtool.errors import CamtoolError
from camtool.fsutil import remove_stale_temps
from camtool.process import LOCK_NAME, folder_lock
from camtool.settings import SETTINGS_FILE, Settings, load_settings

if TYPE_CHECKING:
    from camtool.training.evaluate import Evaluation
    from camtool.training.types import TrainObserver, TrainResult

__all__ = [
    "DEMO_DEFAULTS",
    "DemoConfig",
    "DemoReport",
    "demo_settings",
    "draw_demo_data",
    "run_demo",
]


@dataclass(frozen=True)
class DemoConfig:
    """The sizes of the demo; the defaults reach high accuracy in about three CPU minutes."""

    train_per_class: int = 300
    val_per_class: int = 40  # the test images
    image_size: int = 64  # of the images and the network input
    holdout: int = 100  # train/ images held out to choose best.pt
    epochs: int = 6
    batch_size: int = 16
    learning_rate: float = 0.002  # AdamW's, cosine schedule to 0
    output_stride: int = 16
    crop_scale: tuple[float, float] = (0.5, 1.0)  # area range of the training random crop
    object_scale: tuple[float, float] = (0.2, 0.3)  # shape radius / image_size
    num_cams: int = 10  # val/ images to draw maps of, in turn from each class
    workers: int = 0
    seed: int = 0  # of the data and the training


DEMO_DEFAULTS = DemoConfig()


@dataclass
class DemoReport:
    """What the demo did; ``test``: ``best.pt`` on ``val/``; ``cam_failures``: maps not drawn."""

    output_dir: Path
    data_dir: Path
    training: TrainResult
    test: Evaluation
    cams_dir: Path
    cam_files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    localization: dict[str, Any] | None = None
    cam_failures: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``camtool demo --json`` document (``training`` as ``camtool train --json``)."""
        return {
            "output_dir": str(self.output_dir),
            "data_dir": str(self.data_dir),
            "seconds": round(self.seconds, 3),
            "test": {key: getattr(self.test, key) for key in ("accuracy", "loss", "images")},
            "localization": self.localization,
            "cams_dir": str(self.cams_dir),
            "cam_files": [str(p) for p in self.cam_files],
            "training": self.training.to_dict(),
            "skipped": self.skipped,
        }

    @property
    def skipped(self) -> list[dict[str, str]]:
        """``{"path", "error"}`` of every unreadable image met, each once."""
        from camtool.evaluation.data import unique_skipped

        located = (self.localization or {}).get("skipped_files", [])
        return unique_skipped(
            self.training.skipped, self.test.skipped_files, self.cam_failures, located
        )


def demo_settings(
    output_dir: Path, config: DemoConfig, device: str | None = None, arch: str | None = None
) -> Settings:
    """The settings the demo trains with (over ``CAMTOOL_*`` env vars); ``arch`` replaces the
    ResNet-18, keeping its own stride if it cannot have the demo's."""
    from camtool.core.archs import arch_problem

    arch = arch or "resnet18"
    stride: int | None = config.output_stride
    if arch_problem(arch) is None and arch_problem(arch, stride) is not None:
        stride = None
    return load_settings(
        None,
        {
            "model": {"arch": arch, "pretrained": False, "output_stride": stride},
            "dataset": {
                "name": "folder",
                "data_dir": Path(output_dir) / "data",
                "img_size": config.image_size,
                "val_size": config.holdout,
            },
            "training": {
                "num_epochs": config.epochs,
                "batch_size": config.batch_size,
                "learning_rate": config.learning_rate,
                "weight_decay": 0.05,
                "optimizer": "adamw",
                "scheduler": "cosine",
                "early_stopping_patience": 0,
                "save_every": config.epochs,
                "checkpoint_dir": Path(output_dir) / "checkpoints",
                "seed": config.seed,
            },
            "runtime": {"workers": config.workers, "device": device},
            "cam": {"output_dir": Path(output_dir) / "cams"},
        },
    )


def draw_demo_data(data_dir: Path, config: DemoConfig) -> Path:
    """Draw ``config``'s shapes dataset into ``data_dir`` (the same bytes for the same config)."""
    from camtool.data.synthetic import make_shapes_dataset

    return make_shapes_dataset(
        Path(data_dir),
        train_per_class=config.train_per_class,
        val_per_class=config.val_per_class,
        image_size=config.image_size,
        seed=config.seed,
        object_scale=config.object_scale,
    )


def run_demo(
    output_dir: Path = Path("camtool-demo"),
    config: DemoConfig | None = None,
    *,
    device: str | None = None,
    arch: str | None = None,
    observer: TrainObserver | None = None,
    on_stage: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> DemoReport:
    """Generate the data, train, test and draw maps in ``output_dir`` (see the module docstring).

    Args:
        config: sizes; ``None`` for :data:`DEMO_DEFAULTS`.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``; ``None`` for the settings' choice.
        arch: the network trained from scratch; ``None`` for ResNet-18.
        on_stage: told a short line as each stage starts.
        overwrite: replace files in ``checkpoints/`` and ``cams/`` not written by a demo.

    Raises:
        CamtoolError: ``data/`` holds something else than a generated dataset, the folder holds
            files the demo did not write (without ``overwrite``), or another demo runs in it.
    """
    from camtool.training.loop import train

    output_dir, config = Path(output_dir), config or DEMO_DEFAULTS
    with folder_lock(output_dir, "demo"):
        remove_stale_temps(output_dir, recursive=True)
        _refuse_foreign_files(output_dir, overwrite)
        started = time.perf_counter()
        say = on_stage or (lambda _message: None)
        settings = demo_settings(output_dir, config, device, arch)
        data_dir = Path(settings.dataset.data_dir)
        say(f"drawing the shapes dataset into {data_dir}")
        draw_demo_data(data_dir, config)
        say(f"training a {settings.model.arch} from scratch")
        result = train(settings, observer=observer, crop_scale=config.crop_scale, overwrite=True)
        say(f"testing {result.best_checkpoint} on {data_dir / 'val'}")
        test, cam_files, localization, failures = _test_and_draw(settings, result, config.num_cams)
        return DemoReport(
            output_dir=output_dir,
            data_dir=data_dir,
            training=result,
            test=test,
            cams_dir=Path(settings.cam.output_dir),
            cam_files=cam_files,
            seconds=time.perf_counter() - started,
            localization=localization,
            cam_failures=failures,
        )


def _refuse_foreign_files(output_dir: Path, overwrite: bool) -> None:
    if overwrite or (output_dir / "checkpoints" / SETTINGS_FILE).is_file():
        return
    for sub in ("checkpoints", "cams"):
        folder = output_dir / sub
        found = (
            sorted(p for p in folder.iterdir() if p.name != LOCK_NAME) if folder.is_dir() else []
        )
        if found:
            raise CamtoolError(
                f"{found[0]} was not written by camtool demo; pass --overwrite to replace the "
                f"files in {folder}, or choose another -o DIR"
            )


def _test_and_draw(
    settings: Settings, result: TrainResult, num_cams: int
) -> tuple[Evaluation, list[Path], dict[str, Any], list[dict[str, str]]]:
    """Test accuracy, ``num_cams`` maps, their localization, and the maps that failed."""
    from camtool.core.checkpoint import load_checkpoint
    from camtool.core.device import resolve_device
    from camtool.core.torch_runner import TorchRunner
    from camtool.data.datasets import make_loader
    from camtool.evaluation.data import model_split
    from camtool.evaluation.evaluate import evaluate_localization
    from camtool.explain.files import CamOptions, explain_file
    from camtool.training.evaluate import evaluate

    assert result.best_checkpoint is not None  # at least one epoch ran
    device = resolve_device(settings.runtime.device.value)
    runner = TorchRunner(load_checkpoint(result.best_checkpoint), device)
    root, runtime = Path(settings.dataset.data_dir), settings.runtime
    test_set = model_split(root, "val", runner.info)
    loader = make_loader(
        test_set, runtime.batch_size, False, runtime.workers, device.type == "cuda"
    )
    test = evaluate(runner.model, loader, device)
    # no peaks and boxes: the demo scores localization on every test image below instead
    options = CamOptions.from_settings(settings, topk=1, figure=True, locate=False)
    cams_dir = Path(settings.cam.output_dir)
    cams_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    failures: list[dict[str, str]] = []
    for path, label in _spread_over_classes(test_set.samples, num_cams):
        base = cams_dir / f"{runner.info.class_names[label]}_{path.stem}"
        outcome = explain_file(runner, path, base, options)
        written.extend(Path(p) for p in outcome.outputs)
        if outcome.error is not None:
            failures.append({"path": str(path), "error": outcome.error})
    localization = evaluate_localization(runner, root, "val", None, batch_size=runtime.batch_size)
    return test, written, localization, failures


def _spread_over_classes(samples: list[tuple[Path, int]], count: int) -> list[tuple[Path, int]]:
    """Up to ``count`` samples taken in turn from each class."""
    by_class: dict[int, list[tuple[Path, int]]] = {}
    for sample in samples:
        by_class.setdefault(sample[1], []).append(sample)
    rounds = zip_longest(*(by_class[label] for label in sorted(by_class)))
    return [sample for one_each in rounds for sample in one_each if sample is not None][:count]
