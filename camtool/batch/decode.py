"""batch-cam's first stage: worker processes read and preprocess the images, in order.

A worker opens each image (:func:`camtool.data.images.load_image`: size check before decoding,
EXIF orientation, conversion to RGB), resizes it to its model input
(:func:`camtool.data.images.preprocess_array`: shorter side ``img_size``, each side a multiple of
the model's output stride) and hands back the original pixels and the model input, or the reason
the file cannot be used. Nothing here raises for one bad file, and nothing imports torch: the
workers are a :class:`~concurrent.futures.ProcessPoolExecutor` with a bounded read-ahead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from camtool.data.images import ResizeGeometry, load_image, preprocess_array
from camtool.errors import CamtoolError
from camtool.process import worker_init

__all__ = ["Decoded", "Reader", "read_images"]

_AHEAD = 2  # images read ahead per worker (as a DataLoader's prefetch_factor)


@dataclass
class Decoded:
    """One image ready to explain: its pixels and its model input.

    Attributes:
        original: ``(H, W, 3)`` uint8, upright RGB.
        tensor: ``(3, h, w)`` float32, normalised model input.
    """

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


@dataclass(frozen=True)
class Reader:
    """Reads one image file into a :class:`Decoded`, or the reason it cannot (a ``str``).

    Attributes:
        short_side: the model's ``img_size``.
        mean: per-channel mean, for normalising.
        std: per-channel standard deviation.
        max_pixels: refuse larger images before decoding them.
        stride: the model's output stride (model inputs are multiples of it).
    """

    short_side: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    max_pixels: int | None
    stride: int = 1

    def __call__(self, path: str) -> Decoded | str:
        try:
            image = load_image(Path(path), self.max_pixels)
            size, mean, std = self.short_side, self.mean, self.std
            tensor = preprocess_array(image, size, mean, std, stride=self.stride)
            return Decoded(np.asarray(image, dtype=np.uint8), tensor)
        except CamtoolError as exc:  # the manifest row has the path: the message need not
            return exc.message.removeprefix(f"{path}: ")
        except Exception as exc:  # a decoder bug or MemoryError: this file fails, not the run
            return f"cannot read image ({type(exc).__name__}: {exc})"


def read_images(
    reader: Callable[[str], Decoded | str], paths: Sequence[str], workers: int
) -> Generator[Decoded | str, None, None]:
    """``reader(path)`` (a :class:`Reader`) for each of ``paths``, in order, in ``workers``
    processes (0: in this one).

    At most ``2 * workers`` images are read ahead of the consumer, so memory stays flat. Closing
    the iterator (or an exception in the consumer) cancels the reads not started and waits for
    the few in progress; the workers ignore Ctrl-C and die with this process
    (:func:`camtool.process.worker_init`).

    Raises:
        CamtoolError: a worker process died (e.g. a decoder crashed it).
    """
    workers = max(0, min(workers, len(paths)))
    if not workers:
        yield from map(reader, paths)
        return
    pool = ProcessPoolExecutor(workers, initializer=worker_init(), initargs=(0,))
    todo = iter(paths)
    try:
        pending = deque(pool.submit(reader, path) for path in islice(todo, _AHEAD * workers))
        while pending:
            try:
                result = pending.popleft().result()
            except BrokenProcessPool:
                raise CamtoolError("reading images failed: a decoding worker died") from None
            pending.extend(pool.submit(reader, path) for path in islice(todo, 1))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
