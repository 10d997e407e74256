"""Shared pieces of ``camtool eval``: reading a split, checking it fits the model, batching it.

Used by :mod:`camtool.evaluation.evaluate` and the per-metric modules
(:mod:`camtool.evaluation.classification`,
:mod:`camtool.evaluation.localization`, :mod:`camtool.evaluation.faithfulness`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from camtool.core.runner import ModelInfo
from camtool.data.datasets import (
    ImageFolderDataset,
    SkippedImage,
    class_names_for,
    collate_skip_none,
)
from camtool.errors import CamtoolError, ConfigError
from camtool.process import worker_init

__all__ = [
    "CROP_NOTE",
    "SPLITS",
    "EvalProgress",
    "IndexedDataset",
    "check_classes",
    "make_loader",
    "merge_skipped",
    "oom_error",
    "split_dataset",
]

SPLITS: tuple[str, ...] = ("val", "train")
"""Split folders ``camtool eval`` reads: ``val/`` (the test split) or all of ``train/``."""

EvalProgress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; ``stage`` is a metric group's name."""

CROP_NOTE = "eval transform: shorter side resized to 1.14 * img_size, centre crop img_size"
"""How the classification and faithfulness inputs are preprocessed (recorded in the report)."""


def split_dataset(
    root: Path,
    split: str,
    transform: Callable[[Image.Image], Tensor],
    max_pixels: int | None = None,
) -> ImageFolderDataset:
    """The images of ``root/<split>`` labelled with ``train/``'s class indices.

    Args:
        root: the dataset root.
        split: ``"val"`` or ``"train"`` (the whole folder, held-out part included).
        transform: maps an RGB image to a tensor.
        max_pixels: larger images are skipped unread.

    Returns:
        An :class:`~camtool.data.datasets.ImageFolderDataset`.

    Raises:
        ConfigError: an unknown split.
        CamtoolError: the folder is missing or empty.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose {' or '.join(SPLITS)}")
    folders = class_names_for(root, "folder")
    mapping = {name: i for i, name in enumerate(folders)}
    return ImageFolderDataset(root, split, transform, class_to_idx=mapping, max_pixels=max_pixels)


def check_classes(dataset: ImageFolderDataset, info: ModelInfo) -> None:
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


class IndexedDataset(Dataset[tuple[Tensor, int] | SkippedImage]):
    """Yields ``(image, sample index)`` so results can be traced back to their files, or the
    :class:`~camtool.data.datasets.SkippedImage` of an unreadable file."""

    def __init__(self, dataset: ImageFolderDataset, indices: Sequence[int] | None = None) -> None:
        self.dataset = dataset
        self.indices = list(range(len(dataset))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, int] | SkippedImage:
        index = self.indices[i]
        item = self.dataset[index]
        return item if isinstance(item, SkippedImage) else (item[0], index)


def make_loader(
    ds: Dataset[Any], batch_size: int, workers: int, device: torch.device | str
) -> DataLoader:
    """An unshuffled loader that drops unreadable images (see :func:`collate_skip_none`).

    Raises:
        ConfigError: ``batch_size`` below 1.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=torch.device(device).type == "cuda",
        collate_fn=collate_skip_none,
        worker_init_fn=worker_init(),
    )


def merge_skipped(*groups: Sequence[Mapping[str, str]] | None) -> list[dict[str, str]]:
    """The ``{"path", "error"}`` entries of several metric groups, each path once, sorted."""
    found: dict[str, str] = {}
    for group in groups:
        for entry in group or ():
            found.setdefault(entry["path"], entry["error"])
    return [{"path": path, "error": found[path]} for path in sorted(found)]


def oom_error() -> CamtoolError:
    """The error raised when the GPU runs out of memory during evaluation."""
    return CamtoolError("out of GPU memory; try a smaller --batch-size or --device cpu")
