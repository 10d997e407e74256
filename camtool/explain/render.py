"""Drawing maps: colouring a heatmap and blending it over the image (the three-panel figure is in
:mod:`camtool.explain.figure`).

The default colormap, ``jet``, is built here from its definition: each channel is a piecewise
linear function of the value in [0, 1] through the knots below (the segment data of MATLAB's and
matplotlib's ``jet``). Any other name is looked up in matplotlib, imported only then, so the
default ``camtool cam --overlay-only`` path never pays matplotlib's import.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

__all__ = ["LUT_SIZE", "colorize", "colormap_lut", "encode_image", "overlay"]

#: Entries in a lookup table: one per 8-bit heat level.
LUT_SIZE = 256

#: ``jet``: per channel, (value, intensity) knots of a piecewise linear ramp.
_JET_KNOTS: dict[str, tuple[tuple[float, float], ...]] = {
    "red": ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    "green": ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    "blue": ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
}


@lru_cache(maxsize=8)
def colormap_lut(name: str = "jet") -> np.ndarray:
    """A ``(256, 3)`` uint8 table, row ``i`` the colour of heat ``i / 255``, of ``jet`` (built
    here) or any matplotlib colormap (a ``KeyError`` for an unknown name)."""
    levels = np.linspace(0.0, 1.0, LUT_SIZE)
    if name == "jet":
        knots = (zip(*_JET_KNOTS[c], strict=True) for c in ("red", "green", "blue"))
        rgb = np.stack([np.interp(levels, xs, ys) for xs, ys in knots], axis=-1)
    else:
        from matplotlib import colormaps

        rgb = colormaps[name].resampled(LUT_SIZE)(np.arange(LUT_SIZE))[:, :3]
    lut = (rgb * 255).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def colorize(heat: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """Map a ``(H, W)`` array in [0, 1] to ``(H, W, 3)`` uint8 colours (:func:`colormap_lut`)."""
    lut = colormap_lut(colormap)
    return lut[np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8)]


def overlay(
    image: Image.Image, heat: np.ndarray, alpha: float = 0.5, colormap: str = "jet"
) -> Image.Image:
    """Blend the coloured heatmap over ``image`` (same size): ``alpha`` is the heatmap's weight."""
    colour = Image.fromarray(colorize(heat, colormap))
    return Image.blend(image.convert("RGB"), colour, alpha)


def encode_image(image: Image.Image, fmt: str = "png", quality: int = 90) -> bytes:
    """Encode a PIL image as PNG or JPEG bytes."""
    buffer = io.BytesIO()
    if fmt.lower() in ("jpg", "jpeg"):
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
