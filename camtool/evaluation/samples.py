"""Dataset samples by index (``cam --dataset --index``): sample ``i`` of a split or class-folder
view is its ``i``-th file in sorted order, the index ``eval`` reports."""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from camtool.data.datasets import ImageFolderDataset
from camtool.data.labels import folder_class
from camtool.errors import ConfigError, InputError
from camtool.evaluation.data import SPLITS, eval_transform, model_split

if TYPE_CHECKING:
    from PIL import Image

    from camtool.core.runner import ModelInfo

__all__ = ["DatasetSample", "choose_samples", "dataset_view", "draw_seed"]


@dataclass(frozen=True)
class DatasetSample:
    """One image of a view: its ``index``, file and true class (model class index and name)."""

    index: int
    path: Path
    true_idx: int
    true_name: str

    def load(self) -> Image.Image:
        """The image as RGB; InputError if unreadable."""
        from camtool.data.images import load_image

        return load_image(self.path)


def dataset_view(
    spec: str, info: ModelInfo, root: Path | None, max_pixels: int | None
) -> ImageFolderDataset:
    """The images ``--dataset spec`` (a split, or a folder of class folders) names, with the
    model's class indices and transform; ``root``: the dataset root, for a split.

    Raises:
        ConfigError: a split without ``root``; a folder that holds ``train/``.
        InputError: a class folder that names none of the model's classes.
        CamtoolError: a missing or empty folder; a split whose classes are not the model's.
    """
    if spec in SPLITS:
        if root is None:
            raise ConfigError(f"--dataset {spec} needs the dataset's root folder")
        return model_split(root, spec, info, max_pixels)
    folder = Path(spec)
    if (folder / "train").is_dir():
        raise ConfigError(
            f"{folder} is a dataset root; give --data-dir {folder} --dataset val (or train)"
        )
    if not folder.is_dir():
        raise ConfigError(f"--dataset {spec}: choose train, val, or a folder of class folders")
    mapping: dict[str, int] = {}
    for sub in sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[0] != "."):
        found = folder_class(sub, info.class_names)
        if found is None:
            raise InputError(
                f"{folder / sub} names none of the model's classes "
                f"({', '.join(info.class_names[:4])}...)"
            )
        mapping[sub] = found
    transform = eval_transform(info)
    return ImageFolderDataset(
        folder.parent, folder.name, transform, class_to_idx=mapping, max_pixels=max_pixels
    )


def draw_seed() -> int:
    """A fresh seed for ``--random`` without ``--seed`` (printed, so the draw can be repeated)."""
    return secrets.randbelow(2**31)


def choose_samples(
    spec: str,
    info: ModelInfo,
    root: Path | None,
    *,
    indices: Sequence[int] = (),
    count: int | None = None,
    seed: int = 0,
    max_pixels: int | None = None,
    name: str = "the dataset",
) -> tuple[int, list[DatasetSample]]:
    """The size of :func:`dataset_view` ``(spec, info, root, max_pixels)`` and its samples of
    ``--index`` (``indices``, in order) or ``--random`` (``count`` drawn with ``seed``, sorted),
    their classes named by the model's; ``name`` is the view in errors.

    Raises:
        ConfigError: both or neither of ``indices`` and ``count``; an index outside the view, or
            more images asked for than it has; and as :func:`dataset_view`.
        InputError, CamtoolError: as :func:`dataset_view`.
    """
    view = dataset_view(spec, info, root, max_pixels)
    if bool(indices) == (count is not None):
        raise ConfigError("choose samples with either --index I or --random N")
    size = len(view)
    if count is not None:
        if not 1 <= count <= size:
            raise ConfigError(f"--random {count}: {name} has {size} images")
        indices = sorted(random.Random(seed).sample(range(size), count))
    for index in indices:
        if not 0 <= index < size:
            raise ConfigError(
                f"--index {index} is beyond {name}: it has {size} images, indices 0 to {size - 1}"
            )
    return size, [
        DatasetSample(i, path, label, info.class_names[label])
        for i in indices
        for path, label in [view.samples[i]]
    ]
