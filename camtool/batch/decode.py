"""batch-cam's first stage: DataLoader worker processes read and preprocess the images.

A worker opens each image (:func:`camtool.data.images.load_image`: size check before decoding,
EXIF orientation, conversion to RGB), resizes it to its model input
(:func:`camtool.data.images.preprocess`: shorter side ``img_size``, each side a multiple of the
model's output stride) and hands back the original pixels and the model input, or the reason
the file cannot be used. Nothing here raises for one bad file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from camtool.data.images import ResizeGeometry, load_image, preprocess
from camtool.errors import CamtoolError
from camtool.process import worker_init

__all__ = ["Decoded", "ImageFiles", "Sample", "close_samples", "keep_as_is", "open_samples"]

Sample = tuple[int, np.ndarray | None, np.ndarray | None, str | None]
"""``(index, original (H, W, 3) uint8, model input (3, h, w) float32, error)``; the arrays are
``None`` exactly when ``error`` says why the file cannot be used."""


@dataclass
class Decoded:
    """One image ready to explain: its index among the inputs, its pixels and its model input.

    Attributes:
        index: position in the list of inputs being read.
        original: ``(H, W, 3)`` uint8, upright RGB.
        tensor: ``(3, h, w)`` float32, normalised model input.
    """

    index: int
    original: np.ndarray
    tensor: np.ndarray

    @property
    def nbytes(self) -> int:
        """Bytes held by both arrays."""
        return int(self.original.nbytes + self.tensor.nbytes)

    @property
    def geometry(self) -> ResizeGeometry:
        """How the original was resized into the model input."""
        height, width = self.original.shape[:2]
        return ResizeGeometry(width, height, self.tensor.shape[2], self.tensor.shape[1])


def _reason(message: str, path: str) -> str:
    """An error message without the leading ``path: `` (the manifest row has the path)."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


class ImageFiles(Dataset[Sample]):
    """Reads image ``i`` of ``paths`` in a DataLoader worker; see :data:`Sample`.

    Args:
        paths: the image files.
        short_side: the model's ``img_size``.
        mean: per-channel mean, for normalising.
        std: per-channel standard deviation.
        max_pixels: refuse larger images before decoding them.
        stride: the model's output stride (model inputs are multiples of it).
    """

    def __init__(
        self,
        paths: list[str],
        short_side: int,
        mean: Sequence[float],
        std: Sequence[float],
        max_pixels: int | None,
        stride: int = 1,
    ) -> None:
        self.paths = paths
        self.short_side = short_side
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.max_pixels = max_pixels
        self.stride = stride

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Sample:
        path = self.paths[index]
        try:
            image = load_image(Path(path), self.max_pixels)
            tensor = preprocess(image, self.short_side, self.mean, self.std, stride=self.stride)
            return index, np.array(image, dtype=np.uint8), tensor.numpy(), None
        except CamtoolError as exc:
            return index, None, None, _reason(exc.message, path)
        except Exception as exc:  # a decoder bug or MemoryError: this file fails, not the run
            return index, None, None, f"cannot read image ({type(exc).__name__}: {exc})"


def keep_as_is(sample: Any) -> Any:
    """DataLoader ``collate_fn`` that leaves samples alone (numpy arrays are not converted)."""
    return sample


def open_samples(dataset: ImageFiles, workers: int) -> Iterator[Sample]:
    """Start reading ``dataset`` in order, in ``workers`` processes (0: in this one).

    Close the iterator with :func:`close_samples` when done or interrupted.
    """
    workers = max(0, min(workers, len(dataset)))
    loader = DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        collate_fn=keep_as_is,
        prefetch_factor=2 if workers else None,
        worker_init_fn=worker_init(),
    )
    return iter(loader)


def close_samples(samples: Iterator[Sample] | None) -> None:
    """Stop a DataLoader iterator's worker processes now (not whenever it is collected)."""
    shutdown = getattr(samples, "_shutdown_workers", None)
    if callable(shutdown):
        shutdown()
