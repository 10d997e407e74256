"""Image-folder datasets (``root/{train,val}/<class>/...``), transforms and the data loader.

Images are decoded by :func:`camtool.data.images.load_image`, as in ``cam`` and ``batch-cam``;
an unreadable one becomes a :class:`SkippedImage`, returned as the third element of each batch.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.dataloader import default_collate
from torchvision import transforms as T

from camtool.choices import DatasetName
from camtool.core.imagenet import IMAGENET_MEAN, IMAGENET_STD, IMAGENETTE_CLASSES
from camtool.data.images import IMAGE_SUFFIXES, load_image, walk_files
from camtool.errors import CamtoolError, ConfigError, InputError
from camtool.process import worker_init

__all__ = [
    "DEFAULT_CROP_SCALE",
    "ImageFolderDataset",
    "SkippedImage",
    "build_transforms",
    "class_names_for",
    "collate_skip_none",
    "find_dataset_root",
    "is_imagenette",
    "make_loader",
]


DEFAULT_CROP_SCALE: tuple[float, float] = (0.08, 1.0)
"""Area range of ``RandomResizedCrop`` (torchvision's default)."""

Transform = Callable[[Image.Image], Tensor]
Item = tuple[Tensor, int]


def find_dataset_root(data_dir: Path) -> Path:
    """``data_dir`` if it has ``train/``, else its only subfolder with ``train/`` and ``val/``.

    Raises:
        CamtoolError: no dataset found, or several candidate subfolders.
    """
    data_dir = Path(data_dir)
    if (data_dir / "train").is_dir():
        return data_dir
    subs = sorted(data_dir.iterdir()) if data_dir.is_dir() else []
    candidates = [
        s
        for s in subs
        if not s.name.startswith(".") and (s / "train").is_dir() and (s / "val").is_dir()
    ]
    if not candidates:
        raise CamtoolError(
            f"no dataset found in {data_dir} (expected train/ and val/ folders); "
            "run `camtool download` first or set data_dir to a dataset folder"
        )
    if len(candidates) > 1:
        names = ", ".join(c.name for c in candidates)
        raise CamtoolError(
            f"{data_dir} holds several datasets ({names}); set data_dir to one of them"
        )
    return candidates[0]


def class_names_for(root: Path, dataset_name: str) -> list[str]:
    """The class names of ``root/train``'s sorted class folders: the folder names, or for an
    ``imagenette*`` dataset their :data:`~camtool.core.imagenet.IMAGENETTE_CLASSES` names.

    Raises:
        ConfigError: unknown ``dataset_name``.
        CamtoolError: ``root/train`` missing or without class folders.
    """
    folders = _class_folders(Path(root) / "train")
    if is_imagenette(dataset_name):
        return [IMAGENETTE_CLASSES.get(f, f) for f in folders]
    return folders


def build_transforms(
    img_size: int,
    train: bool,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    crop_scale: tuple[float, float] = DEFAULT_CROP_SCALE,
) -> Transform:
    """RGB PIL image -> ``(3, img_size, img_size)`` float tensor normalised by ``mean``/``std``.

    Train: ``RandomResizedCrop(img_size, scale=crop_scale)`` and a random horizontal flip. Eval:
    ``Resize(int(img_size * 1.14))`` and ``CenterCrop(img_size)``.

    Raises:
        ConfigError: ``img_size`` below 1, or a bad ``crop_scale``.
    """
    if img_size < 1:
        raise ConfigError(f"img_size must be positive, got {img_size}")
    low, high = crop_scale
    if not 0 < low <= high <= 1:
        raise ConfigError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
    steps: list[Callable[..., Any]]
    if train:
        steps = [T.RandomResizedCrop(img_size, scale=crop_scale), T.RandomHorizontalFlip()]
    else:
        steps = [T.Resize(int(img_size * 1.14)), T.CenterCrop(img_size)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(list(mean), list(std))])


@dataclass(frozen=True)
class SkippedImage:
    """An unreadable image's ``path`` and the ``error`` :func:`~.images.load_image` gave."""

    path: str
    error: str

    @classmethod
    def from_error(cls, path: Path, exc: InputError) -> SkippedImage:
        """The record of ``path``, the message without its leading path."""
        return cls(str(path), exc.message.removeprefix(f"{path}: "))

    def to_dict(self) -> dict[str, str]:
        """``{"path": ..., "error": ...}`` for JSON reports."""
        return {"path": self.path, "error": self.error}


class ImageFolderDataset(Dataset[Item | SkippedImage]):
    """Images in ``root/<split_dir>/<class>/...`` labelled by ``class_to_idx`` (default: this
    split's sorted class folders from 0; pass train's for the test split).

    Files with an :data:`~.images.IMAGE_SUFFIXES` suffix (any case) are found recursively, hidden
    entries skipped; ``samples`` (``(path, label)``) are sorted. Images over ``max_pixels``
    pixels are skipped undecoded (``None``: Pillow's own limit).

    Raises:
        CamtoolError: the split folder is missing or holds no images.
        InputError: a class folder not in ``class_to_idx``.
    """

    def __init__(
        self,
        root: Path,
        split_dir: str,
        transform: Transform,
        class_to_idx: dict[str, int] | None = None,
        max_pixels: int | None = None,
    ) -> None:
        folder = Path(root) / split_dir
        folders = _class_folders(folder)
        if class_to_idx is None:
            class_to_idx = {name: i for i, name in enumerate(folders)}
        unknown = [f for f in folders if f not in class_to_idx]
        if unknown:
            raise InputError(f"{folder / unknown[0]} is a class folder not found in train/")
        self.root = Path(root)
        self.transform = transform
        self.max_pixels = max_pixels
        self.class_to_idx = dict(class_to_idx)
        self.classes = sorted(self.class_to_idx, key=self.class_to_idx.__getitem__)
        self.samples: list[tuple[Path, int]] = [
            (path, class_to_idx[name])
            for name in folders
            for path in sorted(walk_files(folder / name, IMAGE_SUFFIXES, follow_links=True))
        ]
        if not self.samples:
            raise CamtoolError(f"no images found in {folder}")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Item | SkippedImage:
        """The transformed image and its label, or a :class:`SkippedImage`."""
        path, label = self.samples[index]
        try:
            image = load_image(path, self.max_pixels)
        except InputError as exc:
            return SkippedImage.from_error(path, exc)
        return self.transform(image), label

    @property
    def targets(self) -> list[int]:
        """The label of each sample, in order."""
        return [label for _, label in self.samples]

    def with_transform(self, transform: Transform) -> ImageFolderDataset:
        """A copy listing the same samples but applying ``transform``."""
        other = copy.copy(self)
        other.transform = transform
        return other


def collate_skip_none(
    batch: Sequence[Item | SkippedImage],
) -> tuple[Tensor, Tensor, list[SkippedImage]]:
    """``(images, labels, skipped)``: the readable items' ``(N, C, H, W)`` images and ``(N,)``
    labels (``N`` may be 0) and the :class:`SkippedImage` items."""
    kept = [item for item in batch if not isinstance(item, SkippedImage)]
    skipped = [item for item in batch if isinstance(item, SkippedImage)]
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long), skipped
    images, labels = default_collate(kept)
    return images, labels, skipped


def make_loader(
    ds: Dataset[Any],
    batch_size: int,
    shuffle: bool,
    workers: int,
    pin_memory: bool,
    sampler: Sampler[int] | None = None,
    seed: int | None = None,
) -> DataLoader[Any]:
    """A ``DataLoader`` batching by :func:`collate_skip_none`; ``shuffle`` is ignored with a
    ``sampler``, workers persist between epochs, ``seed`` seeds the shuffle and the workers.

    Raises:
        ConfigError: ``batch_size`` below 1 or ``workers`` negative.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if workers < 0:
        raise ConfigError(f"workers must be 0 or more, got {workers}")
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        collate_fn=collate_skip_none,
        generator=generator,
        worker_init_fn=worker_init(_seed_worker),
        persistent_workers=workers > 0,
    )


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def is_imagenette(dataset_name: str) -> bool:
    """Whether ``dataset_name`` uses Imagenette's wnid folders.

    Raises:
        ConfigError: an unknown dataset name.
    """
    if dataset_name.startswith("imagenette"):
        return True
    if dataset_name == "folder":
        return False
    names = ", ".join(n.value for n in DatasetName)
    raise ConfigError(f"unknown dataset name {dataset_name!r}; choose from {names}")


def _class_folders(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise CamtoolError(f"{folder} is missing; run `camtool download` or check data_dir")
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise CamtoolError(f"{folder} has no class folders")
    return names
