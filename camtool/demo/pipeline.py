"""``camtool demo``: the whole pipeline on generated data, offline, in a few minutes on a CPU.

It draws the synthetic shapes dataset (:mod:`camtool.data.synthetic`) into ``DIR/data``, trains a
ResNet-18 from scratch on it with the ordinary training core (:func:`camtool.training.loop.train`,
with settings built by :func:`camtool.settings.load_settings`, so ``CAMTOOL_*`` variables apply),
measures the accuracy of ``best.pt`` on the untouched ``val/`` images, and writes class
activation maps of some of those images into ``DIR/cams`` with the code ``camtool cam`` uses::

    DIR/data/          train/ val/ boxes.csv classes.txt
    DIR/checkpoints/   best.pt last.pt metrics.jsonl curves.png camtool-settings.toml
    DIR/cams/          <class>_<image>_cam.png   (original | heatmap | overlay)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain, zip_longest
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
    """The sizes of the demo; the defaults reach high accuracy in about three CPU minutes.

    Attributes:
        train_per_class: generated ``train/`` images per class.
        val_per_class: generated ``val/`` images per class (the test images).
        image_size: side of the generated images, and of the network input.
        holdout: ``train/`` images held out for model selection (``best.pt``).
        epochs: training epochs.
        batch_size: images per step.
        learning_rate: AdamW's initial rate (cosine schedule to 0).
        output_stride: 16 for maps twice as fine as the standard 32.
        crop_scale: area range of the training random crop (keeps the shape in view).
        object_scale: range of each shape's radius, as a fraction of ``image_size``.
        num_cams: ``val/`` images to draw maps of, taken in turn from each class.
        workers: data loader worker processes.
        seed: seed of the data and of the training.
    """

    train_per_class: int = 300
    val_per_class: int = 40
    image_size: int = 64
    holdout: int = 100
    epochs: int = 6
    batch_size: int = 16
    learning_rate: float = 0.002
    output_stride: int = 16
    crop_scale: tuple[float, float] = (0.5, 1.0)
    object_scale: tuple[float, float] = (0.2, 0.3)
    num_cams: int = 10
    workers: int = 0
    seed: int = 0


DEMO_DEFAULTS = DemoConfig()
"""What ``camtool demo`` runs."""


@dataclass
class DemoReport:
    """What the demo did and where its outputs are: ``training`` the training run (checkpoints,
    history, best held-out accuracy), ``test`` the accuracy of ``best.pt`` on the generated
    ``val/`` images, ``cam_files`` the maps written into ``cams_dir``, ``seconds`` the wall time,
    ``localization`` the maps' box-based scores (``None`` until computed) and ``cam_failures``
    the ``{"path", "error"}`` of the images whose maps could not be drawn."""

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
        """The ``camtool demo --json`` document (paths as strings): the test and map scores
        here, the training run under ``training`` (as ``camtool train --json`` gives it)."""
        return {
            "output_dir": str(self.output_dir),
            "data_dir": str(self.data_dir),
            "seconds": round(self.seconds, 3),
            "test": {
                "accuracy": self.test.accuracy,
                "loss": self.test.loss,
                "images": self.test.images,
            },
            "localization": self.localization,
            "cams_dir": str(self.cams_dir),
            "cam_files": [str(p) for p in self.cam_files],
            "training": self.training.to_dict(),
            "skipped": self.skipped,
        }

    @property
    def skipped(self) -> list[dict[str, str]]:
        """``{"path", "error"}`` of every unreadable image met (training, test, maps), each once."""
        found: dict[str, str] = {}
        located = (self.localization or {}).get("skipped_files", [])
        for entry in chain(
            self.training.skipped, self.test.skipped_files, self.cam_failures, located
        ):
            found.setdefault(entry["path"], entry["error"])
        return [{"path": p, "error": e} for p, e in sorted(found.items())]


def demo_settings(
    output_dir: Path, config: DemoConfig, device: str | None = None, arch: str | None = None
) -> Settings:
    """The settings the demo trains with (``CAMTOOL_*`` env vars apply beneath them).

    ``arch`` replaces the ResNet-18 (``None``); an arch that cannot have the demo's output
    stride (SqueezeNet, Inception v3) keeps its own.
    """
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
    """Draw the shapes dataset of ``config``'s sizes and seed into ``data_dir``
    (:func:`camtool.data.synthetic.make_shapes_dataset`: the same bytes for the same config)."""
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
    """Generate the data, train, test and draw maps; see the module docstring.

    Args:
        output_dir: the demo's folder (an earlier demo there is replaced).
        config: sizes; ``None`` for :data:`DEMO_DEFAULTS`.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``; ``None`` for the settings' choice.
        arch: the network trained from scratch; ``None`` for ResNet-18.
        observer: training progress callbacks.
        on_stage: told a short line as each stage starts.
        overwrite: replace files in ``output_dir/checkpoints`` and ``output_dir/cams`` also when
            they are not an earlier demo's.

    Raises:
        CamtoolError: e.g. ``output_dir/data`` holds something that is not a generated dataset,
            the folder holds files the demo did not write (without ``overwrite``), or another
            demo runs in it.
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
    """Refuse to replace files in ``checkpoints/`` or ``cams/`` unless an earlier demo (known by
    ``checkpoints/camtool-settings.toml``) wrote them."""
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
    """Accuracy of ``best.pt`` on ``val/``, maps of ``num_cams`` of those images, how well the
    maps find the shapes (box localization against ``boxes.csv``), and the images whose maps
    failed (``{"path", "error"}``)."""
    from camtool.core.checkpoint import load_checkpoint
    from camtool.core.device import resolve_device
    from camtool.core.torch_runner import TorchRunner
    from camtool.data.datasets import ImageFolderDataset, build_transforms, make_loader
    from camtool.evaluation.evaluate import evaluate_localization
    from camtool.explain.files import CamOptions, explain_file
    from camtool.training.evaluate import evaluate

    assert result.best_checkpoint is not None  # at least one epoch ran
    device = resolve_device(settings.runtime.device.value)
    loaded = load_checkpoint(result.best_checkpoint)
    root, runtime = Path(settings.dataset.data_dir), settings.runtime
    transform = build_transforms(loaded.img_size, False, loaded.mean, loaded.std)
    mapping = {name: i for i, name in enumerate(loaded.class_names)}
    test_set = ImageFolderDataset(root, "val", transform, class_to_idx=mapping)
    loader = make_loader(
        test_set, runtime.batch_size, False, runtime.workers, device.type == "cuda"
    )
    test = evaluate(loaded.model.to(device), loader, device)
    runner = TorchRunner(loaded, device)
    # no peaks and boxes: the demo scores localization on every test image below instead
    options = CamOptions.from_settings(settings, topk=1, figure=True, locate=False)
    cams_dir = Path(settings.cam.output_dir)
    cams_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    failures: list[dict[str, str]] = []
    for path, label in _spread_over_classes(test_set.samples, num_cams):
        base = cams_dir / f"{loaded.class_names[label]}_{path.stem}"
        outcome = explain_file(runner, path, base, options)
        written.extend(Path(p) for p in outcome.outputs)
        if outcome.error is not None:
            failures.append({"path": str(path), "error": outcome.error})
    localization = evaluate_localization(runner, root, "val", None, batch_size=runtime.batch_size)
    return test, written, localization, failures


def _spread_over_classes(samples: list[tuple[Path, int]], count: int) -> list[tuple[Path, int]]:
    """Up to ``count`` samples taken in turn from each class, in file order."""
    by_class: dict[int, list[tuple[Path, int]]] = {}
    for sample in samples:
        by_class.setdefault(sample[1], []).append(sample)
    rounds = zip_longest(*(by_class[label] for label in sorted(by_class)))
    return [sample for one_each in rounds for sample in one_each if sample is not None][:count]
