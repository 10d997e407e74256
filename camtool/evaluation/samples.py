"""Samples of a dataset by index, as ``camtool eval`` numbers them: ``cam --dataset --index``.

A view is ``val`` or ``train`` of the model's dataset (exactly what ``eval`` reads), or any
folder laid out like them (``FOLDER/<class>/...``, class folders named like the model's classes,
see :func:`camtool.data.labels.folder_class`). Sample ``i`` is the ``i``-th file in sorted order,
the index ``eval`` reports (e.g. in its most confident mistakes).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camtool.data.datasets import ImageFolderDataset, build_transforms
from camtool.data.labels import folder_class
from camtool.errors import ConfigError, InputError
from camtool.evaluation.data import SPLITS, model_split

if TYPE_CHECKING:
    from PIL import Image

    from camtool.core.runner import ModelInfo

__all__ = ["DatasetSample", "choose_indices", "dataset_view", "draw_seed", "samples_of"]


@dataclass(frozen=True)
class DatasetSample:
    """One image of a dataset: its ``index`` in the view's sorted order (``eval``'s index for a
    split), its file, and its true class (an index into the model's class names, and the name)."""

    index: int
    path: Path
    true_idx: int
    true_name: str

    def load(self, max_pixels: int | None = None) -> Image.Image:
        """The image as RGB, by :func:`camtool.data.images.load_image` (InputError: unreadable,
        or more than ``max_pixels`` pixels)."""
        from camtool.data.images import load_image

        return load_image(self.path, max_pixels)

    def to_dict(self) -> dict[str, Any]:
        """``{index, path, true_idx, true_name}`` as JSON types."""
        return {**asdict(self), "path": str(self.path)}


def dataset_view(
    spec: str, info: ModelInfo, root: Path | None, max_pixels: int | None = None
) -> ImageFolderDataset:
    """The images ``--dataset spec`` (``"val"``, ``"train"``, or a folder holding one folder per
    class) names, labelled with the model's class indices and read with its transform; ``root``
    is the dataset root for a split (:func:`~camtool.evaluation.source.dataset_root`); images
    larger than ``max_pixels`` are skipped unread.

    Raises:
        ConfigError: a split without ``root``; a folder that holds ``train/`` (a dataset root:
            give ``--data-dir`` and a split).
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
    for sub in sorted(p.name for p in folder.iterdir() if p.is_dir()):
        if sub.startswith("."):
            continue
        found = folder_class(sub, info.class_names)
        if found is None:
            raise InputError(
                f"{folder / sub} names none of the model's classes "
                f"({', '.join(info.class_names[:4])}...)"
            )
        mapping[sub] = found
    transform = build_transforms(info.img_size, False, info.mean, info.std)
    return ImageFolderDataset(
        folder.parent, folder.name, transform, class_to_idx=mapping, max_pixels=max_pixels
    )


def draw_seed() -> int:
    """A fresh seed for ``--random`` without ``--seed`` (printed, so the draw can be repeated)."""
    return secrets.randbelow(2**31)


def choose_indices(
    size: int,
    *,
    indices: Sequence[int] = (),
    count: int | None = None,
    seed: int = 0,
    name: str = "the dataset",
) -> list[int]:
    """The sample indices of ``--index`` (``indices``, kept in their order) or ``--random``
    (``count`` distinct ones drawn uniformly with ``seed``, in increasing order: the same seed and
    ``size`` give the same indices), checked against the view's ``size``; ``name`` is the view.

    Raises:
        ConfigError: both or neither of ``indices`` and ``count``; an index outside
            ``0 .. size - 1`` or more images asked for than there are (the message gives
            ``size``).
    """
    if bool(indices) == (count is not None):
        raise ConfigError("choose samples with either --index I or --random N")
    if count is not None:
        if not 1 <= count <= size:
            raise ConfigError(f"--random {count}: {name} has {size} images")
        return sorted(random.Random(seed).sample(range(size), count))
    for index in indices:
        if not 0 <= index < size:
            raise ConfigError(
                f"--index {index} is beyond {name}: it has {size} images, indices 0 to {size - 1}"
            )
    return list(indices)


def samples_of(
    dataset: ImageFolderDataset, indices: Sequence[int], class_names: Sequence[str]
) -> list[DatasetSample]:
    """The :class:`DatasetSample` of each index (checked by :func:`choose_indices`), its true
    class named by the model's ``class_names`` (a view's labels are the model's indices)."""
    return [
        DatasetSample(i, path, label, class_names[label])
        for i in indices
        for path, label in [dataset.samples[i]]
    ]
