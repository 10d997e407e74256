"""Shared pieces of ``camtool eval``: the split, its fit to the model, and the batch loop."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from camtool.choices import Split
from camtool.core.runner import ModelInfo
from camtool.data.datasets import (
    ImageFolderDataset,
    SkippedImage,
    build_transforms,
    class_names_for,
    make_loader,
)
from camtool.errors import CamtoolError, ConfigError
from camtool.explain.files import refuse_out_of_gpu_memory

__all__ = [
    "CROP_NOTE",
    "SPLITS",
    "EvalLoop",
    "EvalProgress",
    "eval_transform",
    "indexed_loader",
    "model_split",
    "refuse_out_of_memory",
    "skipped_fields",
    "split_dataset",
    "unique_skipped",
]

SPLITS: tuple[str, ...] = tuple(split.value for split in Split)
EvalProgress = Callable[[str, int, int], None]  # progress(metric group, done, total)
CROP_NOTE = "eval transform: shorter side resized to 1.14 * img_size, centre crop img_size"

_P = ParamSpec("_P")
_R = TypeVar("_R")


def eval_transform(info: ModelInfo) -> Callable[[Image.Image], Tensor]:
    """The model's evaluation transform (:data:`CROP_NOTE`, then its mean and std)."""
    return build_transforms(info.img_size, False, info.mean, info.std)


def split_dataset(
    root: Path,
    split: str,
    transform: Callable[[Image.Image], Tensor],
    max_pixels: int | None = None,
) -> ImageFolderDataset:
    """The images of ``root/<split>`` labelled with ``train/``'s class indices, ``transform``
    applied; those over ``max_pixels`` skipped unread.

    Raises:
        ConfigError: an unknown split.
        CamtoolError: the folder is missing or empty.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose {' or '.join(SPLITS)}")
    mapping = {name: i for i, name in enumerate(class_names_for(root, "folder"))}
    return ImageFolderDataset(root, split, transform, class_to_idx=mapping, max_pixels=max_pixels)


def model_split(
    root: Path, split: str, info: ModelInfo, max_pixels: int | None = None
) -> ImageFolderDataset:
    """:func:`split_dataset` with the model's evaluation transform, its class folders checked
    against the model's classes (unless those are ``class_0 ...``).

    Raises:
        ConfigError: an unknown split.
        CamtoolError: the folder is missing or empty, or its classes are not the model's.
    """
    dataset = split_dataset(root, split, eval_transform(info), max_pixels)
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
    return dataset


@dataclass
class _Indexed(Dataset[tuple[Tensor, int] | SkippedImage]):
    dataset: ImageFolderDataset
    indices: Sequence[int]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, int] | SkippedImage:
        index = self.indices[i]
        item = self.dataset[index]
        return item if isinstance(item, SkippedImage) else (item[0], index)


def indexed_loader(
    dataset: ImageFolderDataset,
    indices: Sequence[int] | None,
    batch_size: int,
    workers: int,
    device: str,
) -> DataLoader[Any]:
    """Unshuffled ``(images, sample indices, skipped)`` batches of ``indices`` (``None``: all)."""
    chosen = _Indexed(dataset, range(len(dataset)) if indices is None else indices)
    pin = torch.device(device).type == "cuda"
    return make_loader(chosen, batch_size, False, workers, pin)


@dataclass
class EvalLoop:
    """A pass over ``(*readable, skipped)`` batches: yields the non-empty readable parts, collects
    :attr:`skipped`, reports progress counting each of ``images`` ``cost`` times."""

    loader: Iterable[Sequence[Any]]
    stage: str
    images: int
    progress: EvalProgress | None
    cost: int = 1
    done: int = field(default=0, init=False)
    skipped: list[SkippedImage] = field(default_factory=list, init=False)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for *readable, unreadable in self.loader:
            self.skipped += unreadable
            self.done += len(unreadable) * self.cost
            if len(readable[0]):
                yield tuple(readable)
                self.done += len(readable[0]) * self.cost
            self.report()

    def report(self, within: int = 0) -> None:
        """Tell ``progress`` how far the pass is, ``within`` units into the current batch."""
        if self.progress is not None:
            self.progress(self.stage, self.done + within, self.images * self.cost)


def skipped_fields(skipped: Sequence[SkippedImage]) -> dict[str, Any]:
    """``skipped`` (how many) and ``skipped_files`` (``{"path", "error"}`` of each)."""
    return {"skipped": len(skipped), "skipped_files": [s.to_dict() for s in skipped]}


def unique_skipped(*groups: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """The ``{"path", "error"}`` entries of ``groups``, one per path (its first error), by path."""
    found: dict[str, str] = {}
    for entry in chain.from_iterable(groups):
        found.setdefault(entry["path"], entry["error"])
    return [{"path": path, "error": error} for path, error in sorted(found.items())]


def refuse_out_of_memory(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate an evaluation step: running out of GPU memory raises one clear CamtoolError."""

    @functools.wraps(fn)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except RuntimeError as exc:
            refuse_out_of_gpu_memory(exc, "a smaller --batch-size or --device cpu")
            raise

    return guarded
