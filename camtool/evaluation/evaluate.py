"""``camtool eval``: the ``classification``, ``localization`` and ``faithfulness`` metric groups
(localization by default only where boxes are known) and the report they write."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from camtool.core.runner import Runner
from camtool.data.boxes import GroundTruth, load_boxes
from camtool.data.datasets import ImageFolderDataset, find_dataset_root
from camtool.errors import ConfigError, InputError
from camtool.evaluation.classification import (
    MAX_MISTAKES,
    confusion_png,
    evaluate_classification,
    mistakes_png,
)
from camtool.evaluation.data import EvalProgress, model_split, split_dataset, unique_skipped
from camtool.evaluation.faithfulness import DEFAULT_FAITHFULNESS_IMAGES, evaluate_faithfulness
from camtool.evaluation.localization import run_localization
from camtool.evaluation.localization_metrics import PROTOCOLS
from camtool.evaluation.source import open_model_and_dataset
from camtool.fsutil import atomic_write_bytes, refuse_to_replace, remove_stale_temps
from camtool.settings import SETTINGS_FILE, Settings, write_settings
from camtool.textio import write_json

__all__ = [
    "DEFAULT_FAITHFULNESS_IMAGES",
    "DEFAULT_OUTPUT_DIR",
    "METRIC_GROUPS",
    "EvalOptions",
    "EvalReport",
    "evaluate_classification",
    "evaluate_faithfulness",
    "evaluate_localization",
    "parse_metric_groups",
    "run_eval",
    "split_dataset",
]

METRIC_GROUPS: tuple[str, ...] = ("classification", "localization", "faithfulness")
DEFAULT_OUTPUT_DIR = Path("eval_results")


@dataclass(frozen=True)
class EvalOptions:
    """``camtool eval``'s options beyond the settings: ``boxes`` a CSV, VOC XML file or folder
    (``None``: the dataset's ``boxes.csv``), ``metrics`` ``None`` for the default groups,
    ``overwrite`` files in a folder without ``camtool-settings.toml``."""

    split: str = "val"
    boxes: Path | None = None
    metrics: frozenset[str] | None = None
    faithfulness_images: int = DEFAULT_FAITHFULNESS_IMAGES
    output_dir: Path = DEFAULT_OUTPUT_DIR
    mistakes: int = MAX_MISTAKES
    protocol: str = "camtool"
    overwrite: bool = False


@dataclass
class EvalReport:
    """What ``camtool eval`` found; :meth:`to_dict` is the JSON document (and ``metrics.json``)."""

    model: str
    device: str
    dataset: str
    split: str
    classes: list[str]
    output_dir: str
    upsample: str = "aligned"
    cell_geometry: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)
    classification: dict[str, Any] | None = None
    localization: dict[str, Any] | None = None
    faithfulness: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> list[dict[str, str]]:
        """Every unreadable image met by any metric group: ``{"path", "error"}``, each once."""
        groups = (self.classification, self.localization, self.faithfulness)
        return unique_skipped(*((group or {}).get("skipped_files") or () for group in groups))

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON types."""
        return {**asdict(self), "skipped": self.skipped}


def parse_metric_groups(spec: str | Iterable[str] | None) -> frozenset[str] | None:
    """The groups ``--metrics a,b`` (repeated, or ``all``) names; ``None`` (no names): default.

    Raises:
        ConfigError: an unknown name.
    """
    if spec is None:
        return None
    parts = [spec] if isinstance(spec, str) else list(spec)
    names = [n.strip().lower() for part in parts for n in part.split(",") if n.strip()]
    if not names:
        return None
    if "all" in names:
        return frozenset(METRIC_GROUPS)
    unknown = [n for n in names if n not in METRIC_GROUPS]
    if unknown:
        raise ConfigError(
            f"unknown metric group {unknown[0]!r}; choose from {', '.join(METRIC_GROUPS)} or all"
        )
    return frozenset(names)


def run_eval(
    model_path: Path | None,
    settings: Settings,
    options: EvalOptions | None = None,
    *,
    progress: EvalProgress | None = None,
) -> EvalReport:
    """Evaluate a checkpoint (``None``: the zero-shot baseline) on a split of its dataset
    (:func:`~camtool.evaluation.source.open_model_and_dataset`), with ``settings.runtime`` and
    ``settings.cam``; write ``metrics.json``, ``confusion_matrix.png``, ``mistakes.png`` and
    ``camtool-settings.toml`` to ``options.output_dir``.

    Raises:
        CamtoolError: a bad model, dataset, box file or device (before any long computation);
            without a model, class folders that are not Imagenette ids.
    """
    options = options or EvalOptions()
    _check_options(options)
    upsample = settings.cam.upsample.value
    runner, root = open_model_and_dataset(model_path, settings)
    info = runner.info
    dataset = model_split(root, options.split, info, settings.cam.max_pixels)
    if options.metrics is None:
        gt = load_boxes(options.boxes, root)  # None: no localization
    else:
        gt = _boxes(options.boxes, root) if "localization" in options.metrics else None
    wanted = options.metrics if options.metrics is not None else frozenset(METRIC_GROUPS)
    report = EvalReport(
        model=info.source,
        device=str(runner.device),
        dataset=str(root),
        split=options.split,
        classes=list(info.class_names),
        output_dir=str(options.output_dir),
        upsample=upsample,
        cell_geometry=info.geometry.to_dict() if info.geometry is not None else None,
    )
    if gt is None and options.metrics is None:
        report.notes.append(
            "localization skipped: no boxes (give --boxes, or put boxes.csv at the dataset root)"
        )
    out_dir = _prepare_output(Path(options.output_dir), options.overwrite)
    report.files["settings"] = str(write_settings(out_dir, settings))
    with torch.inference_mode():
        if "classification" in wanted:
            _classification(runner, dataset, settings, options, report, progress)
        if gt is not None:
            report.localization = run_localization(
                runner,
                dataset.samples,
                gt,
                batch_size=settings.runtime.batch_size,
                workers=settings.runtime.workers,
                max_pixels=settings.cam.max_pixels,
                progress=progress,
                warn=report.notes.append,
                upsample=upsample,
                protocol=options.protocol,
            )
        if "faithfulness" in wanted:
            report.faithfulness = evaluate_faithfulness(
                runner,
                dataset,
                max_images=options.faithfulness_images,
                batch_size=settings.runtime.batch_size,
                workers=settings.runtime.workers,
                progress=progress,
                upsample=upsample,
            )
    metrics_file = out_dir / "metrics.json"
    report.files["metrics"] = str(metrics_file)
    write_json(metrics_file, report.to_dict(), tidy=True)  # the numbers of `eval --json`
    return report


def evaluate_localization(
    runner: Runner,
    root: Path,
    split: str = "val",
    boxes: GroundTruth | Path | None = None,
    batch_size: int = 64,
    *,
    workers: int = 0,
    max_pixels: int | None = None,
    progress: EvalProgress | None = None,
    upsample: str = "aligned",
    protocol: str = "camtool",
) -> dict[str, Any]:
    """:func:`~camtool.evaluation.localization.run_localization` on a split of ``root``, with
    ``notes`` (boxes clipped); ``boxes``: read, a box file or folder, or ``<root>/boxes.csv``.

    Raises:
        InputError: no box file, a malformed one, or boxes matching no image of the split.
        CamtoolError: the dataset does not fit the model.
    """
    root = find_dataset_root(Path(root))
    dataset = model_split(root, split, runner.info)
    gt = _boxes(boxes, root)
    notes: list[str] = []
    with torch.inference_mode():
        found = run_localization(
            runner,
            dataset.samples,
            gt,
            batch_size=batch_size,
            workers=workers,
            max_pixels=max_pixels,
            progress=progress,
            warn=notes.append,
            upsample=upsample,
            protocol=protocol,
        )
    return {**found, "notes": notes}


def _check_options(options: EvalOptions) -> None:
    if options.faithfulness_images < 1:
        raise ConfigError(
            f"--faithfulness-images must be at least 1, got {options.faithfulness_images}"
        )
    if options.mistakes < 0:
        raise ConfigError(f"the number of mistakes shown must be 0 or more, got {options.mistakes}")
    if options.protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {options.protocol!r}; choose {', '.join(PROTOCOLS)}")


def _boxes(boxes: GroundTruth | Path | None, root: Path) -> GroundTruth:
    gt = boxes if isinstance(boxes, GroundTruth) else load_boxes(boxes, root)
    if gt is None:
        raise InputError(
            f"localization needs boxes: give --boxes, or put {root / 'boxes.csv'} there"
        )
    return gt


def _prepare_output(out_dir: Path, overwrite: bool) -> Path:
    outputs = [out_dir / name for name in ("metrics.json", "confusion_matrix.png", "mistakes.png")]
    refuse_to_replace(
        outputs, overwrite=overwrite, hint=", or choose another -o DIR", marker=SETTINGS_FILE
    )
    remove_stale_temps(out_dir)  # then writing the settings makes the folder
    return out_dir


def _classification(
    runner: Runner,
    dataset: ImageFolderDataset,
    settings: Settings,
    options: EvalOptions,
    report: EvalReport,
    progress: EvalProgress | None,
) -> None:
    out_dir, cam = Path(options.output_dir), settings.cam
    found = report.classification = evaluate_classification(
        runner,
        dataset,
        batch_size=settings.runtime.batch_size,
        workers=settings.runtime.workers,
        mistakes=options.mistakes,
        progress=progress,
    )
    cm_file = out_dir / "confusion_matrix.png"
    atomic_write_bytes(cm_file, confusion_png(found["confusion_matrix"], runner.info.class_names))
    report.files["confusion_matrix"] = str(cm_file)
    grid = mistakes_png(runner, found["mistakes"], cam.alpha, cam.colormap, cam.upsample.value)
    if grid is not None:
        atomic_write_bytes(out_dir / "mistakes.png", grid)
        report.files["mistakes"] = str(out_dir / "mistakes.png")
