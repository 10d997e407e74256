"""``camtool eval``: how often the classifier is right, and whether its maps point at the object.

Three groups of metrics, chosen with ``--metrics``:

``classification``
    Over the whole split, with the evaluation transform the model was validated with (shorter
    side resized to ``1.14 * img_size``, centre crop ``img_size``): cross-entropy loss, top-1 and
    top-5 accuracy, per-class precision / recall / F1, the confusion matrix (also drawn as
    ``confusion_matrix.png``) and the most confident mistakes (listed, and drawn with their maps
    as ``mistakes.png``).

``localization`` (needs ground-truth boxes, see :mod:`camtool.boxes`)
    Boxes are in the pixels of the original image, and a centre crop would cut part of it away,
    so these images are fed as ``camtool cam`` feeds them: **no crop**, shorter side resized to
    ``img_size`` (:func:`camtool.imaging.preprocess`). The map then covers the whole image and is
    bilinearly upsampled to the original size, where it is compared with the boxes. Images of the
    same resized size are batched together. Reported: the CAM paper's top-1 and GT-known
    localization accuracy (largest region above 20% of the map's maximum, IoU >= 0.5) and
    MaxBoxAccV2, see :class:`camtool.metrics.LocalizationAccumulator`. The top-1 flag uses the
    prediction on that same uncropped input, the map being the ground-truth class's.

``faithfulness`` (no boxes needed)
    Deletion and insertion AUC and Average Drop / Increase in Confidence of the predicted class's
    map. They cost ``2 * (steps + 1) + 2`` = 36 forward passes per image, so they run on at most
    ``faithfulness_images`` images (256 by default) spread evenly over the split (whose files
    are sorted by class, so every class is represented). The map is compared with the very input
    it was computed from, so the evaluation transform is used here.

By default classification runs, localization runs when boxes are available (``--boxes``, or the
dataset's own ``boxes.csv``), and faithfulness runs on the bounded subset.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from camtool.boxes import GroundTruth, GtBox, fit_boxes, load_boxes
from camtool.cam import heatmap
from camtool.cam_job import write_settings
from camtool.data import (
    ImageFolderDataset,
    build_transforms,
    class_names_for,
    collate_skip_none,
    find_dataset_root,
)
from camtool.errors import CamtoolError, ConfigError, InputError
from camtool.fsutil import atomic_write_bytes, atomic_write_text
from camtool.imaging import load_image, preprocess, resized_size
from camtool.metrics import (
    LocalizationAccumulator,
    average_drop_increase,
    confusion_matrix,
    deletion_insertion_auc,
    per_class_prf,
    topk_correct,
)
from camtool.render import overlay
from camtool.runner import ModelInfo, Runner, runner_from_settings
from camtool.settings import DatasetSettings, Settings

__all__ = [
    "DEFAULT_FAITHFULNESS_IMAGES",
    "DEFAULT_OUTPUT_DIR",
    "FAITHFULNESS_STEPS",
    "MAX_MISTAKES",
    "METRIC_GROUPS",
    "SPLITS",
    "EvalOptions",
    "EvalProgress",
    "EvalReport",
    "confusion_png",
    "evaluate_classification",
    "evaluate_faithfulness",
    "evaluate_localization",
    "parse_metric_groups",
    "run_eval",
    "split_dataset",
]

METRIC_GROUPS: tuple[str, ...] = ("classification", "localization", "faithfulness")
"""The groups ``--metrics`` chooses from."""

SPLITS: tuple[str, ...] = ("val", "train")
"""Split folders ``camtool eval`` reads: ``val/`` (the test split) or all of ``train/``."""

DEFAULT_OUTPUT_DIR = Path("eval_results")
DEFAULT_FAITHFULNESS_IMAGES = 256
FAITHFULNESS_STEPS = 16
MAX_MISTAKES = 16
CAM_THRESHOLD = 0.2
LOC_IOU = 0.5

EvalProgress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; ``stage`` is a metric group's name."""

_CROP_NOTE = "eval transform: shorter side resized to 1.14 * img_size, centre crop img_size"
_NO_CROP_NOTE = (
    "no crop: shorter side resized to img_size, maps upsampled to the original image, "
    "boxes compared in original pixels"
)


@dataclass(frozen=True)
class EvalOptions:
    """What ``camtool eval`` measures, beyond the settings.

    Attributes:
        split: ``"val"`` (the test split) or ``"train"``.
        boxes: a CSV file, a VOC XML file or folder; ``None`` for the dataset's ``boxes.csv``.
        metrics: the groups to run; ``None`` for the default (see the module docstring).
        faithfulness_images: most images the faithfulness metrics run on.
        output_dir: where ``metrics.json``, the figures and the settings are written.
        mistakes: how many of the most confident mistakes to list and draw.
    """

    split: str = "val"
    boxes: Path | None = None
    metrics: frozenset[str] | None = None
    faithfulness_images: int = DEFAULT_FAITHFULNESS_IMAGES
    output_dir: Path = DEFAULT_OUTPUT_DIR
    mistakes: int = MAX_MISTAKES


@dataclass
class EvalReport:
    """What ``camtool eval`` found; :meth:`to_dict` is the JSON document (and ``metrics.json``)."""

    model: str
    device: str
    dataset: str
    split: str
    classes: list[str]
    output_dir: str
    files: dict[str, str] = field(default_factory=dict)
    classification: dict[str, Any] | None = None
    localization: dict[str, Any] | None = None
    faithfulness: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON types."""
        return {
            "model": self.model,
            "device": self.device,
            "dataset": self.dataset,
            "split": self.split,
            "classes": list(self.classes),
            "output_dir": self.output_dir,
            "files": dict(self.files),
            "classification": self.classification,
            "localization": self.localization,
            "faithfulness": self.faithfulness,
            "notes": list(self.notes),
        }


def parse_metric_groups(spec: str | Iterable[str] | None) -> frozenset[str] | None:
    """Turn ``--metrics classification,faithfulness`` (or repeated flags) into a set.

    Args:
        spec: comma-separated names, a list of them, or ``None`` for the default; ``all``
            names every group.

    Returns:
        The chosen groups, or ``None`` for the default.

    Raises:
        ConfigError: an unknown name, or none at all.
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


# --------------------------------------------------------------------------- data


def split_dataset(
    root: Path, split: str, transform: Callable[[Image.Image], Tensor]
) -> ImageFolderDataset:
    """The images of ``root/<split>`` labelled with ``train/``'s class indices.

    Args:
        root: the dataset root.
        split: ``"val"`` or ``"train"`` (the whole folder, held-out part included).
        transform: maps an RGB image to a tensor.

    Returns:
        An :class:`~camtool.data.ImageFolderDataset`.

    Raises:
        ConfigError: an unknown split.
        CamtoolError: the folder is missing or empty.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose {' or '.join(SPLITS)}")
    folders = class_names_for(root, "folder")
    mapping = {name: i for i, name in enumerate(folders)}
    return ImageFolderDataset(root, split, transform, class_to_idx=mapping)


def _check_classes(dataset: ImageFolderDataset, info: ModelInfo) -> None:
    """The model must have been trained on these classes, in this order."""
    folders = dataset.classes
    names = info.class_names
    if len(folders) != len(names):
        raise CamtoolError(
            f"the model has {len(names)} classes but {dataset.root} has {len(folders)} class "
            "folders; evaluate it on the dataset it was trained on"
        )
    generic = all(n == f"class_{i}" for i, n in enumerate(names))
    readable = class_names_for(dataset.root, "imagenette")
    if not generic and names not in (folders, readable):
        raise CamtoolError(
            f"the model's classes ({', '.join(names[:4])}...) are not the class folders of "
            f"{dataset.root} ({', '.join(folders[:4])}...)"
        )


def _data_dir(settings: Settings, info: ModelInfo) -> Path:
    """``dataset.data_dir`` if set; otherwise the one the checkpoint was trained on, if present."""
    chosen = Path(settings.dataset.data_dir)
    default = DatasetSettings().data_dir
    recorded = (info.settings.get("dataset") or {}).get("data_dir")
    if chosen == Path(default) and recorded and Path(recorded).is_dir():
        return Path(recorded)
    return chosen


class _Indexed(Dataset[tuple[Tensor, int] | None]):
    """Yields ``(image, sample index)`` so results can be traced back to their files."""

    def __init__(self, dataset: ImageFolderDataset, indices: Sequence[int] | None = None) -> None:
        self.dataset = dataset
        self.indices = list(range(len(dataset))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, int] | None:
        index = self.indices[i]
        item = self.dataset[index]
        return None if item is None else (item[0], index)


def _loader(ds: Dataset[Any], batch_size: int, workers: int, device: torch.device) -> DataLoader:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        collate_fn=collate_skip_none,
    )


def _oom() -> CamtoolError:
    return CamtoolError("out of GPU memory; try a smaller --batch-size or --device cpu")


# --------------------------------------------------------------------------- classification


def evaluate_classification(
    runner: Runner,
    dataset: ImageFolderDataset,
    *,
    batch_size: int = 64,
    workers: int = 0,
    mistakes: int = MAX_MISTAKES,
    progress: EvalProgress | None = None,
) -> dict[str, Any]:
    """Loss, top-1/top-5 accuracy, per-class P/R/F1, confusion matrix and confident mistakes.

    Args:
        runner: the model.
        dataset: the split, with the evaluation transform (see :func:`split_dataset`).
        batch_size: images per forward pass.
        workers: DataLoader worker processes.
        mistakes: how many of the most confident mistakes to keep.
        progress: ``progress("classification", done, total)`` after each batch.

    Returns:
        A JSON-ready dict; accuracies are fractions in [0, 1]. ``mistakes`` lists ``path``,
        ``true``, ``predicted`` and ``prob`` (the predicted class's probability), most confident
        first.

    Raises:
        CamtoolError: no image could be read, or the GPU ran out of memory.
    """
    names = runner.info.class_names
    n_classes = len(names)
    total = len(dataset)
    loss_sum = 0.0
    correct = {1: 0, 5: 0}
    preds: list[Tensor] = []
    targets: list[Tensor] = []
    confidence: list[Tensor] = []
    order: list[Tensor] = []
    skipped = done = 0
    for images, index, n_skipped in _loader(_Indexed(dataset), batch_size, workers, runner.device):
        skipped += n_skipped
        done += len(index) + n_skipped
        if len(index):
            labels = torch.tensor([dataset.samples[int(i)][1] for i in index])
            try:
                logits = runner(images)[0].float().cpu()
            except torch.cuda.OutOfMemoryError:
                raise _oom() from None
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            for k, hits in topk_correct(logits, labels, (1, 5)).items():
                correct[k] += hits
            probs = logits.softmax(dim=1)
            best = probs.max(dim=1)
            preds.append(best.indices)
            confidence.append(best.values)
            targets.append(labels)
            order.append(index)
        if progress is not None:
            progress("classification", done, total)
    n = sum(len(t) for t in targets)
    if n == 0:
        raise CamtoolError(f"none of the {total} images of {dataset.root} could be read")
    pred, target = torch.cat(preds), torch.cat(targets)
    conf, idx = torch.cat(confidence), torch.cat(order)
    matrix = confusion_matrix(pred, target, n_classes)
    precision, recall, f1 = per_class_prf(matrix)
    support = matrix.sum(axis=1)
    wrong = torch.nonzero(pred != target).flatten()
    ranked = wrong[torch.argsort(conf[wrong], descending=True, stable=True)][: max(0, mistakes)]
    return {
        "n_images": n,
        "skipped": skipped,
        "loss": loss_sum / n,
        "top1": correct[1] / n,
        "top5": correct[5] / n,
        "top5_k": min(5, n_classes),
        "macro_f1": float(np.mean(f1)),
        "per_class": [
            {
                "index": c,
                "name": names[c],
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(support[c]),
            }
            for c in range(n_classes)
        ],
        "confusion_matrix": matrix.tolist(),
        "mistakes": [
            {
                "path": str(dataset.samples[int(idx[j])][0]),
                "true": names[int(target[j])],
                "predicted": names[int(pred[j])],
                "prob": float(conf[j]),
            }
            for j in ranked.tolist()
        ],
        "preprocessing": _CROP_NOTE,
    }


# --------------------------------------------------------------------------- localization


@dataclass(frozen=True)
class _LocItem:
    path: Path
    label: int
    boxes: list[GtBox]


class _NoCrop(Dataset[tuple[Tensor, int, int, int] | None]):
    """Yields ``(uncropped input, item index, width, height)``, or ``None`` if unreadable."""

    def __init__(self, items: Sequence[_LocItem], info: ModelInfo, max_pixels: int | None) -> None:
        self.items = list(items)
        self.info = info
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Tensor, int, int, int] | None:
        try:
            image = load_image(self.items[i].path, self.max_pixels)
        except InputError:
            return None
        tensor = preprocess(image, self.info.img_size, self.info.mean, self.info.std)
        return tensor, i, image.width, image.height


def _collate_list(batch: Sequence[Any]) -> tuple[list[Any], int]:
    kept = [item for item in batch if item is not None]
    return kept, len(batch) - len(kept)


def _upright_size(path: Path) -> tuple[int, int] | None:
    """The (width, height) an image has once turned upright, read from its header only."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except Exception:  # unreadable files are found and counted when they are loaded
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _size_batches(items: Sequence[_LocItem], img_size: int, batch_size: int) -> list[list[int]]:
    """Indices grouped by the size their uncropped input will have, then cut into batches."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, item in enumerate(items):
        size = _upright_size(item.path)
        key = resized_size(*size, img_size) if size is not None else (0, 0)
        groups.setdefault(key, []).append(i)
    return [
        members[lo : lo + batch_size]
        for members in groups.values()
        for lo in range(0, len(members), batch_size)
    ]


def _localization_items(gt: GroundTruth, dataset: ImageFolderDataset) -> tuple[list[_LocItem], int]:
    paths = [path for path, _ in dataset.samples]
    matched = gt.match(paths)
    items = [
        _LocItem(path, label, boxes)
        for (path, label), boxes in zip(dataset.samples, matched, strict=True)
        if boxes is not None
    ]
    return items, len(paths) - len(items)


def _run_localization(
    runner: Runner,
    items: Sequence[_LocItem],
    *,
    batch_size: int,
    workers: int,
    max_pixels: int | None,
    progress: EvalProgress | None,
) -> tuple[LocalizationAccumulator, int]:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    info = runner.info
    loader = DataLoader(
        _NoCrop(items, info, max_pixels),
        batch_sampler=_size_batches(items, info.img_size, batch_size),
        num_workers=workers,
        collate_fn=_collate_list,
    )
    acc = LocalizationAccumulator(cam_threshold=CAM_THRESHOLD, loc_iou=LOC_IOU)
    skipped = done = 0
    for kept, n_skipped in loader:
        skipped += n_skipped
        done += len(kept) + n_skipped
        by_shape: dict[tuple[int, ...], list[tuple[Tensor, int, int, int]]] = {}
        for entry in kept:
            by_shape.setdefault(tuple(entry[0].shape), []).append(entry)
        for group in by_shape.values():
            chosen = [items[i] for _, i, _, _ in group]
            labels = torch.tensor([item.label for item in chosen])
            try:
                logits, cams = runner(torch.stack([t for t, _, _, _ in group]))
            except torch.cuda.OutOfMemoryError:
                raise _oom() from None
            right = logits.argmax(dim=1).cpu() == labels
            gt_maps = cams[torch.arange(len(group)), labels.to(cams.device)].float().cpu()
            heats = [heatmap(gt_maps[j], (h, w)) for j, (_, _, w, h) in enumerate(group)]
            boxes = [
                fit_boxes(item.boxes, item.path, w, h)
                for item, (_, _, w, h) in zip(chosen, group, strict=True)
            ]
            acc.update(heats, right, boxes)
        if progress is not None:
            progress("localization", done, len(items))
    return acc, skipped


def _localization_dict(
    acc: LocalizationAccumulator, gt: GroundTruth, skipped: int, without: int
) -> dict[str, Any]:
    if acc.n_images == 0:
        raise CamtoolError("none of the images with boxes could be read")
    res = acc.compute()
    return {
        "n_images": res["n_images"],
        "skipped": skipped,
        "n_without_boxes": without,
        "boxes": str(gt.source),
        "top1_loc": res["top1_loc"],
        "gt_known_loc": res["gt_known_loc"],
        "maxboxacc_v2": res["maxboxacc_v2"],
        "maxboxacc_by_iou": {f"{d:g}": v for d, v in res["maxboxacc_by_iou"].items()},
        "best_threshold_by_iou": {f"{d:g}": v for d, v in res["best_threshold_by_iou"].items()},
        "cam_threshold": CAM_THRESHOLD,
        "iou": LOC_IOU,
        "preprocessing": _NO_CROP_NOTE,
    }


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
) -> dict[str, Any]:
    """Box localization of a model's maps on one split of a dataset (what ``camtool demo`` uses).

    Args:
        runner: the model.
        root: the dataset root (holding ``train/`` and the split).
        split: ``"val"`` or ``"train"``.
        boxes: boxes already read, a box file or folder, or ``None`` for ``<root>/boxes.csv``.
        batch_size: most images per forward pass (images of one size are batched together).
        workers: DataLoader worker processes.
        max_pixels: refuse larger images before decoding them.
        progress: ``progress("localization", done, total)`` after each batch.

    Returns:
        A JSON-ready dict: ``top1_loc``, ``gt_known_loc``, ``maxboxacc_v2`` (fractions in
        [0, 1]), ``maxboxacc_by_iou`` and ``best_threshold_by_iou`` (keyed ``"0.3"`` ...),
        ``n_images`` (images with boxes that were evaluated), ``n_without_boxes``, ``skipped``.

    Raises:
        InputError: no box file, a malformed one, or boxes matching no image of the split.
        CamtoolError: the dataset does not fit the model.
    """
    info = runner.info
    root = find_dataset_root(Path(root))
    dataset = split_dataset(
        root, split, build_transforms(info.img_size, False, info.mean, info.std)
    )
    _check_classes(dataset, info)
    gt = boxes if isinstance(boxes, GroundTruth) else load_boxes(boxes, root)
    if gt is None:
        raise InputError(f"no boxes for localization: {root} has no boxes.csv; give --boxes")
    items, without = _localization_items(gt, dataset)
    with torch.inference_mode():
        acc, skipped = _run_localization(
            runner,
            items,
            batch_size=batch_size,
            workers=workers,
            max_pixels=max_pixels,
            progress=progress,
        )
    return _localization_dict(acc, gt, skipped, without)


# --------------------------------------------------------------------------- faithfulness


def _spread(n: int, k: int) -> list[int]:
    """``min(n, k)`` indices spread evenly over ``range(n)``."""
    if k >= n:
        return list(range(n))
    return sorted(set(np.rint(np.linspace(0, n - 1, k)).astype(int).tolist()))


def evaluate_faithfulness(
    runner: Runner,
    dataset: ImageFolderDataset,
    *,
    max_images: int = DEFAULT_FAITHFULNESS_IMAGES,
    batch_size: int = 64,
    workers: int = 0,
    steps: int = FAITHFULNESS_STEPS,
    progress: EvalProgress | None = None,
) -> dict[str, Any]:
    """Deletion / insertion AUC and Average Drop / Increase in Confidence of the predicted maps.

    Args:
        runner: the model.
        dataset: the split, with the evaluation transform.
        max_images: most images used, spread evenly over the split.
        batch_size: images per forward pass (perturbed copies included).
        workers: DataLoader worker processes.
        steps: deletion/insertion increments.
        progress: ``progress("faithfulness", done, total)``, counted in forward-pass images.

    Returns:
        A JSON-ready dict: ``deletion_auc`` (lower is better) and ``insertion_auc`` (higher is
        better), in [0, 1]; ``average_drop`` and ``increase_in_confidence``, in percent.

    Raises:
        ConfigError: ``max_images`` below 1.
        CamtoolError: no image could be read, or the GPU ran out of memory.
    """
    if max_images < 1:
        raise ConfigError(f"the number of faithfulness images must be at least 1, not {max_images}")
    chosen = _spread(len(dataset), max_images)
    per_image = 2 * (steps + 1) + 2
    total = len(chosen) * per_image
    device = runner.device

    def model_fn(batch: Tensor) -> Tensor:
        return runner(batch)[0]

    deletion: list[Tensor] = []
    insertion: list[Tensor] = []
    drops: list[Tensor] = []
    increases: list[Tensor] = []
    skipped = base = 0
    for images, index, n_skipped in _loader(_Indexed(dataset, chosen), batch_size, workers, device):
        skipped += n_skipped
        base += n_skipped * per_image
        if not len(index):
            continue
        x = images.to(device)
        n = x.shape[0]
        offset = [base]

        def report(done: int, _total: int, offset: list[int] = offset) -> None:
            if progress is not None:
                progress("faithfulness", offset[0] + done, total)

        try:
            logits, cams = runner(x)
            target = logits.argmax(dim=1)
            sal = cams[torch.arange(n, device=cams.device), target.to(cams.device)].float()
            for into, mode in ((deletion, "deletion"), (insertion, "insertion")):
                auc = deletion_insertion_auc(
                    model_fn,
                    x,
                    sal,
                    target,
                    steps,
                    batch_size,
                    "deletion" if mode == "deletion" else "insertion",
                    progress=report,
                )
                into.append(auc.float().cpu())
                offset[0] += n * (steps + 1)
            drop, inc = average_drop_increase(model_fn, x, sal, target, batch_size, progress=report)
        except torch.cuda.OutOfMemoryError:
            raise _oom() from None
        drops.append(drop.float().cpu())
        increases.append(inc.cpu())
        base += n * per_image
        if progress is not None:
            progress("faithfulness", base, total)
    if not deletion:
        raise CamtoolError("none of the images chosen for the faithfulness metrics could be read")
    return {
        "n_images": sum(len(d) for d in deletion),
        "skipped": skipped,
        "deletion_auc": float(torch.cat(deletion).mean()),
        "insertion_auc": float(torch.cat(insertion).mean()),
        "average_drop": float(torch.cat(drops).mean()),
        "increase_in_confidence": float(torch.cat(increases).float().mean() * 100.0),
        "steps": steps,
        "target": "predicted class",
        "insertion_start": "blur",
        "preprocessing": _CROP_NOTE,
    }


# --------------------------------------------------------------------------- figures


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def confusion_png(matrix: Sequence[Sequence[int]], names: Sequence[str]) -> bytes:
    """The confusion matrix (rows true, columns predicted) drawn with its counts, as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cm = np.asarray(matrix, dtype=np.int64)
    n = cm.shape[0]
    side = min(30.0, max(5.0, 0.45 * n + 3.0))
    fig = Figure(figsize=(side, side), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    shown = ax.imshow(cm, cmap="Blues", interpolation="nearest")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    if n <= 60:
        ax.set_xticks(range(n), labels=list(names), rotation=90)
        ax.set_yticks(range(n), labels=list(names))
    if n <= 25:
        top = cm.max() if cm.size else 0
        for t in range(n):
            for p in range(n):
                colour = "white" if top and cm[t, p] > top / 2 else "black"
                ax.text(p, t, str(cm[t, p]), ha="center", va="center", color=colour, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    return _png(fig)


def _mistakes_png(
    runner: Runner, mistakes: Sequence[dict[str, Any]], alpha: float, colormap: str
) -> bytes | None:
    """A grid of the mistakes' images, each overlaid with the map of the class predicted."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    info = runner.info
    panels: list[tuple[Image.Image, str]] = []
    for m in mistakes:
        try:
            image = load_image(Path(m["path"]))
        except InputError:
            continue
        tensor = preprocess(image, info.img_size, info.mean, info.std)
        _, cams = runner(tensor[None])
        cls = info.class_names.index(m["predicted"])
        image.thumbnail((256, 256))
        heat = heatmap(cams[0, cls].float().cpu(), (image.height, image.width))
        title = f"true: {m['true']}\npred: {m['predicted']} ({m['prob']:.2f})"
        panels.append((overlay(image, heat, alpha, colormap), title))
    if not panels:
        return None
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(3.2 * cols, 3.5 * rows), dpi=100)
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (picture, title) in zip(axes, panels, strict=False):
        ax.imshow(np.asarray(picture))
        ax.set_title(title, fontsize=9)
    fig.suptitle("Most confident mistakes (map of the predicted class)")
    fig.tight_layout()
    return _png(fig)


# --------------------------------------------------------------------------- the command


def _wanted(groups: frozenset[str] | None, has_boxes: bool) -> frozenset[str]:
    if groups is not None:
        return groups
    default = {"classification", "faithfulness"}
    if has_boxes:
        default.add("localization")
    return frozenset(default)


def run_eval(
    model_path: Path,
    settings: Settings,
    options: EvalOptions | None = None,
    *,
    progress: EvalProgress | None = None,
) -> EvalReport:
    """Evaluate a checkpoint on a split of its dataset and write the results.

    The model's own class names, image size and normalisation are used. The dataset is
    ``dataset.data_dir`` (or, when that is left at its default, the folder the checkpoint was
    trained on if it still exists). ``settings.training`` gives the batch size, workers, device
    and mixed precision; ``settings.cam`` the overlay colours and the pixel limit.

    Writes ``metrics.json`` (the report), ``confusion_matrix.png``, ``mistakes.png`` and
    ``camtool-settings.toml`` to ``options.output_dir``.

    Raises:
        CamtoolError: a bad model, dataset, box file or device (before any long computation).
    """
    options = options or EvalOptions()
    if options.faithfulness_images < 1:
        raise ConfigError(
            f"--faithfulness-images must be at least 1, got {options.faithfulness_images}"
        )
    if options.mistakes < 0:
        raise ConfigError(f"the number of mistakes shown must be 0 or more, got {options.mistakes}")
    runner = runner_from_settings(Path(model_path), settings)
    info = runner.info
    root = find_dataset_root(_data_dir(settings, info))
    transform = build_transforms(info.img_size, False, info.mean, info.std)
    dataset = split_dataset(root, options.split, transform)
    _check_classes(dataset, info)
    groups = options.metrics
    gt = None
    if groups is None or "localization" in groups:
        gt = load_boxes(options.boxes, root)
        if gt is None and groups is not None:
            raise InputError(
                f"localization needs boxes: give --boxes, or put {root / 'boxes.csv'} there"
            )
    wanted = _wanted(groups, gt is not None)
    items: list[_LocItem] = []
    without = 0
    if gt is not None and "localization" in wanted:
        items, without = _localization_items(gt, dataset)
    report = EvalReport(
        model=info.source,
        device=str(runner.device),
        dataset=str(root),
        split=options.split,
        classes=list(info.class_names),
        output_dir=str(options.output_dir),
    )
    if gt is None and groups is None:
        report.notes.append(
            "localization skipped: no boxes (give --boxes, or put boxes.csv at the dataset root)"
        )
    out_dir = Path(options.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report.files["settings"] = str(write_settings(out_dir, settings))
    batch, workers = settings.training.batch_size, settings.training.workers
    with torch.inference_mode():
        if "classification" in wanted:
            report.classification = evaluate_classification(
                runner,
                dataset,
                batch_size=batch,
                workers=workers,
                mistakes=options.mistakes,
                progress=progress,
            )
            cm_file = out_dir / "confusion_matrix.png"
            matrix = report.classification["confusion_matrix"]
            atomic_write_bytes(cm_file, confusion_png(matrix, info.class_names))
            report.files["confusion_matrix"] = str(cm_file)
            grid = _mistakes_png(
                runner, report.classification["mistakes"], settings.cam.alpha, settings.cam.colormap
            )
            if grid is not None:
                atomic_write_bytes(out_dir / "mistakes.png", grid)
                report.files["mistakes"] = str(out_dir / "mistakes.png")
        if gt is not None and "localization" in wanted:
            acc, skipped = _run_localization(
                runner,
                items,
                batch_size=batch,
                workers=workers,
                max_pixels=settings.cam.max_pixels,
                progress=progress,
            )
            report.localization = _localization_dict(acc, gt, skipped, without)
        if "faithfulness" in wanted:
            report.faithfulness = evaluate_faithfulness(
                runner,
                dataset,
                max_images=options.faithfulness_images,
                batch_size=batch,
                workers=workers,
                progress=progress,
            )
    metrics_file = out_dir / "metrics.json"
    report.files["metrics"] = str(metrics_file)
    atomic_write_text(metrics_file, json.dumps(report.to_dict(), indent=2) + "\n")
    return report
