"""Reading images as a user expects (EXIF orientation, any mode to 8-bit RGB), and model input.

An uncropped model input (:func:`input_geometry`) has sides that are multiples of the model's
output stride, so each map cell covers ``stride`` x ``stride`` pixels and images of similar shape
batch together; :class:`ResizeGeometry` keeps both sizes to place maps back on the image.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from camtool.errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = [
    "IMAGE_SUFFIXES",
    "ResizeGeometry",
    "input_geometry",
    "load_image",
    "normalise",
    "preprocess",
    "preprocess_array",
    "resized_size",
    "to_rgb",
    "walk_files",
]

#: The longest side of a model input, in multiples of its shorter one.
MAX_ASPECT = 10.0

#: File suffixes (lower case) that every command lists as images.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)


def walk_files(
    folder: Path, suffixes: Collection[str], *, follow_links: bool = False
) -> list[Path]:
    """The files under ``folder`` with a suffix (any case) in ``suffixes``, hidden entries
    skipped, in :func:`os.walk` order (top-down, names sorted)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=follow_links):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            Path(dirpath, name)
            for name in sorted(filenames)
            if not name.startswith(".") and Path(name).suffix.lower() in suffixes
        )
    return found


def _wide_range(mode: str, array: np.ndarray) -> tuple[float, float]:
    """The (black, white) levels of a wide grey image (see :func:`to_rgb`)."""
    if mode.startswith("I;16"):
        return 0.0, 65535.0
    finite = array[np.isfinite(array)]
    low = float(finite.min()) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 0.0
    for kind, white in (("I", 255.0), ("I", 65535.0), ("F", 1.0)):
        if mode == kind and low >= 0 and high <= white:
            return 0.0, white
    return low, high if high > low else low + 1.0


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL image to 8-bit RGB, its levels kept.

    Wide grey images are scaled from their range to 0..255 (Pillow's ``convert`` would clip):
    ``I;16*`` 0..65535; ``I`` 0..255 or 0..65535 if the values fit, else min..max; ``F`` 0..1 if
    the values fit, else min..max (non-finite: black). Transparency is composited over white;
    other modes use Pillow's conversion.
    """
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        black, white = _wide_range(image.mode, array)
        scaled = np.nan_to_num((array - black) / (white - black), nan=0.0, posinf=1.0, neginf=0.0)
        grey = np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def load_image(path: Path, max_pixels: int | None = None) -> Image.Image:
    """Open, orient (EXIF) and convert (:func:`to_rgb`) one image, refusing one of more than
    ``max_pixels`` pixels before decoding.

    Raises:
        InputError: missing, empty, not an image, unsupported, truncated or too large.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image")
    try:
        if path.stat().st_size == 0:
            raise InputError(f"{path}: empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if max_pixels is not None and width * height > max_pixels:
                    raise InputError(
                        f"{path}: image too large ({width}x{height} = {width * height} pixels,"
                        f" limit {max_pixels}); raise cam.max_pixels (--max-pixels) to allow it"
                    )
                image.load()
                oriented = ImageOps.exif_transpose(image)
                return to_rgb(oriented if oriented is not None else image)
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(f"{path}: image too large (decompression bomb)") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image, or a format Pillow cannot read") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: corrupt or truncated image ({exc})") from None


def resized_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) resized to a shorter side of ``short_side``, the longer capped at
    :data:`MAX_ASPECT` times that."""
    short, long = min(width, height), max(width, height)
    scale = min(short_side / short, short_side * MAX_ASPECT / long)
    new_short = max(1, round(short * scale))
    new_long = max(1, round(long * scale))
    return (new_short, new_long) if width <= height else (new_long, new_short)


@dataclass(frozen=True)
class ResizeGeometry:
    """An image's size (upright, as decoded) and its uncropped model input's, in pixels."""

    width: int
    height: int
    input_width: int
    input_height: int

    @property
    def input_size(self) -> tuple[int, int]:
        """``(width, height)`` of the model input, as PIL's ``resize`` takes it."""
        return self.input_width, self.input_height


def input_geometry(width: int, height: int, short_side: int, *, stride: int = 1) -> ResizeGeometry:
    """The uncropped model input of a ``width`` x ``height`` image: :func:`resized_size`, then
    each side rounded (halves up) to a multiple of ``stride``, at least one stride, so the
    feature grid of ``input / stride`` cells tiles the input.
    """
    new_w, new_h = resized_size(width, height, short_side)
    if stride > 1:
        new_w, new_h = (max(stride, math.floor(n / stride + 0.5) * stride) for n in (new_w, new_h))
    return ResizeGeometry(width, height, new_w, new_h)


def preprocess_array(
    image: Image.Image,
    short_side: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    stride: int = 1,
) -> np.ndarray:
    """An RGB image resized by :func:`input_geometry` and :func:`normalise`-d: a ``(3, H, W)``
    float32 array, ``(W, H)`` being ``input_geometry(...).input_size``."""
    size = input_geometry(image.width, image.height, short_side, stride=stride).input_size
    resized = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
    pixels: np.ndarray = np.asarray(resized, dtype=np.float32) / np.float32(255.0)
    return np.ascontiguousarray(normalise(pixels.transpose(2, 0, 1), mean, std))


def normalise(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``(pixels - mean) / std`` per channel: ``(..., 3, H, W)`` values in ``[0, 1]`` to a
    float32 array of the same shape."""
    shift = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    scale = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    return (np.asarray(pixels, dtype=np.float32) - shift) / scale


def preprocess(
    image: Image.Image,
    short_side: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    stride: int = 1,
) -> torch.Tensor:
    """:func:`preprocess_array` as a ``(3, H, W)`` float32 tensor."""
    import torch

    return torch.from_numpy(preprocess_array(image, short_side, mean, std, stride=stride))
