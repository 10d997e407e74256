"""Stratified, deterministic train / held-out validation / test splits (test is ``val/``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset, Subset

from camtool.core.imagenet import IMAGENET_MEAN, IMAGENET_STD
from camtool.data.datasets import (
    DEFAULT_CROP_SCALE,
    ImageFolderDataset,
    Item,
    SkippedImage,
    build_transforms,
    class_names_for,
    find_dataset_root,
    is_imagenette,
)
from camtool.errors import ConfigError

__all__ = ["DataSplits", "make_splits"]


@dataclass
class DataSplits:
    """``train`` (augmented), ``val`` (held out of ``train/``) and ``test`` (``val/``), both
    with the eval transform, and the class names in label order."""

    train: Dataset[Item | SkippedImage]
    val: Dataset[Item | SkippedImage]
    test: Dataset[Item | SkippedImage]
    class_names: list[str]


def make_splits(
    data_dir: Path,
    dataset_name: str,
    img_size: int,
    val_size: int | float,
    seed: int = 0,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    crop_scale: tuple[float, float] = DEFAULT_CROP_SCALE,
    max_pixels: int | None = None,
) -> DataSplits:
    """The splits of the dataset under ``data_dir`` (:func:`find_dataset_root`).

    ``val_size`` images of ``train/`` (a count, or a fraction ``0 < f < 1``) are held out, per
    class in proportion to its size (largest remainders round up), by a shuffle seeded by
    ``seed``. A fraction holds out at least one image of every class of two or more.

    Raises:
        ConfigError: unknown ``dataset_name``, or ``val_size`` negative or not smaller than the
            number of training images, or a fraction of a folder with one image per class.
        CamtoolError: no dataset, or a split folder missing or empty.
    """
    is_imagenette(dataset_name)  # validates the name before touching the disk
    root = find_dataset_root(data_dir)
    train_tf = build_transforms(img_size, True, mean, std, crop_scale)
    eval_tf = build_transforms(img_size, False, mean, std)
    full = ImageFolderDataset(root, "train", train_tf, max_pixels=max_pixels)
    held = _holdout(full.targets, val_size, seed)
    kept = [i for i in range(len(full)) if i not in held]
    test = ImageFolderDataset(
        root, "val", eval_tf, class_to_idx=full.class_to_idx, max_pixels=max_pixels
    )
    return DataSplits(
        train=Subset(full, kept),
        val=Subset(full.with_transform(eval_tf), sorted(held)),
        test=test,
        class_names=class_names_for(root, dataset_name),
    )


def _holdout(targets: Sequence[int], val_size: int | float, seed: int) -> set[int]:
    """The held-out indices for ``val_size`` (a count, or a fraction ``0 < f < 1``), drawn per
    label in proportion to its count; a fraction takes at least one of each label of two or more
    and keeps one."""
    total = len(targets)
    fraction = isinstance(val_size, float) and 0 < val_size < 1
    if not fraction and not 0 <= val_size < total:
        raise ConfigError(
            f"dataset.val_size is {val_size}, but train/ has {total} images (at most "
            f"{total - 1} can be held out); give a smaller count or a fraction with --val-size "
            "(e.g. --val-size 0.1) or dataset.val_size in the --config file"
        )
    size = round(val_size * total) if fraction else int(val_size)
    by_label: dict[int, list[int]] = {}
    for index, label in enumerate(targets):
        by_label.setdefault(label, []).append(index)
    labels = sorted(by_label)
    shares = [size * len(by_label[lab]) / total for lab in labels]
    quotas = [int(s) for s in shares]
    by_remainder = sorted(range(len(labels)), key=lambda k: (-(shares[k] - quotas[k]), k))
    for k in by_remainder[: size - sum(quotas)]:
        quotas[k] += 1
    if fraction:
        sizes = [len(by_label[lab]) for lab in labels]
        quotas = [min(max(q, 1), n - 1) for q, n in zip(quotas, sizes, strict=True)]
    rng = np.random.default_rng(seed)
    held: set[int] = set()
    for label, quota in zip(labels, quotas, strict=True):
        members = by_label[label]
        picks = rng.permutation(len(members))[:quota]
        held.update(members[int(p)] for p in picks)
    if fraction and not held:
        raise ConfigError(
            f"dataset.val_size is {val_size}, but every class in train/ has a single image, "
            "so none can be held out for validation; add images (two or more per class)"
        )
    return held
