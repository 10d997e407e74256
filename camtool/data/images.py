"""Reading images the way a user expects, and turning them into model input.

Every image is opened lazily, refused before decoding if it has more pixels than allowed,
oriented by its EXIF tag, and converted to 8-bit RGB whatever it was (grayscale, 16-bit,
palette, RGBA composited on white, CMYK). Problems become :class:`~camtool.errors.InputError`
with a plain reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from camtool.errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_ASPECT",
    "load_image",
    "preprocess",
    "preprocess_array",
    "resized_size",
    "to_rgb",
]

#: The longest side of a model input, in multiples of its shorter side.
MAX_ASPECT = 10.0

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL image to 8-bit RGB (transparency composited over white)."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
        array = np.clip(array / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def load_image(path: Path, max_pixels: int | None = None) -> Image.Image:
    """Open, check, orient and convert one image.

    Args:
        path: the image file.
        max_pixels: refuse images larger than this before decoding them (decompression bombs).

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
                        f" limit {max_pixels}); raise --max-pixels to allow it"
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


def resized_size(
    width: int, height: int, short_side: int, max_aspect: float = MAX_ASPECT
) -> tuple[int, int]:
    """The (width, height) after resizing so that the shorter side is ``short_side``.

    For extreme shapes (a 1x1000 strip) the longer side is capped at ``max_aspect`` times
    ``short_side`` instead, so that the input tensor stays of sane size.
    """
    short, long = min(width, height), max(width, height)
    scale = min(short_side / short, short_side * max_aspect / long)
    new_short = max(1, round(short * scale))
    new_long = max(1, round(long * scale))
    return (new_short, new_long) if width <= height else (new_long, new_short)


def preprocess_array(
    image: Image.Image,
    short_side: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> np.ndarray:
    """Resize (shorter side to ``short_side``, no crop) and normalise: ``(3, H, W)`` float32.

    Each channel becomes ``(pixel / 255 - mean) / std``; NumPy only (no torch).
    """
    size = resized_size(image.width, image.height, short_side)
    resized = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
    pixels: np.ndarray = np.asarray(resized, dtype=np.float32) / np.float32(255.0)
    shift = np.asarray(mean, dtype=np.float32)
    scale = np.asarray(std, dtype=np.float32)
    normalised = (pixels - shift) / scale
    return np.ascontiguousarray(normalised.transpose(2, 0, 1))


def preprocess(
    image: Image.Image,
    short_side: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """:func:`preprocess_array` as a ``(3, H, W)`` float32 tensor."""
    import torch

    return torch.from_numpy(preprocess_array(image, short_side, mean, std))
