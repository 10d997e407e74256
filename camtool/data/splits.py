"""Splitting a dataset into train, held-out validation and test, stratified and deterministic.

``train/`` is split into the images that fit the model and ``dataset.val_size`` held out for
model selection (a count, or a fraction of ``train/``); ``val/`` stays the untouched test split
for ``camtool eval``.
"""

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
    """The three splits of a dataset: ``train`` fits the model (random augmentation), ``val``
    holds images out of ``train/`` for model selection, ``test`` is ``val/`` (both with the eval
    transform); ``class_names`` are the readable class names in label order."""

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
    """The train / held-out val / test splits of the dataset under ``data_dir``
    (:func:`find_dataset_root`), transformed by :func:`build_transforms`; ``dataset_name`` as
    :func:`class_names_for`, ``max_pixels`` as :class:`ImageFolderDataset`.

    The held-out set is ``val_size`` images of ``train/`` (0 for none), drawn per class in
    proportion to the class sizes (largest remainders get the rounding) after a shuffle seeded
    by ``seed``; the same arguments always give the same split, and the two parts are disjoint.
    A fraction ``0 < val_size < 1`` holds out that share of ``train/`` (rounded), and at least
    one image of every class that has two or more, so that small folders work too.

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
    names = class_names_for(root, dataset_name)
    return DataSplits(
        train=Subset(full, kept),
        val=Subset(full.with_transform(eval_tf), sorted(held)),
        test=test,
        class_names=names,
    )


def _holdout(targets: Sequence[int], val_size: int | float, seed: int) -> set[int]:
    """The held-out indices for ``val_size`` (a count, or a fraction ``0 < f < 1``)."""
    total = len(targets)
    if isinstance(val_size, float) and 0 < val_size < 1:
        held = _stratified_holdout(targets, round(val_size * total), seed, one_per_class=True)
        if not held:
            raise ConfigError(
                f"dataset.val_size is {val_size}, but every class in train/ has a single image, "
                "so none can be held out for validation; add images (two or more per class)"
            )
        return held
    if not 0 <= val_size < total:
        raise ConfigError(
            f"dataset.val_size is {val_size}, but train/ has {total} images (at most "
            f"{total - 1} can be held out); give a smaller count or a fraction with --val-size "
            "(e.g. --val-size 0.1) or dataset.val_size in the --config file"
        )
    return _stratified_holdout(targets, int(val_size), seed)


def _stratified_holdout(
    targets: Sequence[int], size: int, seed: int, one_per_class: bool = False
) -> set[int]:
    """Indices of ``size`` items drawn from each label in proportion to its count.

    With ``one_per_class``, every label with two or more items gives at least one and keeps at
    least one (so the total may differ from ``size`` a little).
    """
    by_label: dict[int, list[int]] = {}
    for index, label in enumerate(targets):
        by_label.setdefault(label, []).append(index)
    labels = sorted(by_label)
    total = len(targets)
    shares = [size * len(by_label[lab]) / total for lab in labels]
    quotas = [int(s) for s in shares]
    by_remainder = sorted(range(len(labels)), key=lambda k: (-(shares[k] - quotas[k]), k))
    for k in by_remainder[: size - sum(quotas)]:
        quotas[k] += 1
    if one_per_class:
        sizes = [len(by_label[lab]) for lab in labels]
        quotas = [min(max(q, 1), n - 1) for q, n in zip(quotas, sizes, strict=True)]
    rng = np.random.default_rng(seed)
    held: set[int] = set()
    for label, quota in zip(labels, quotas, strict=True):
        members = by_label[label]
        picks = rng.permutation(len(members))[:quota]
        held.update(members[int(p)] for p in picks)
    return held
