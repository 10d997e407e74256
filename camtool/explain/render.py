"""Drawing maps: colouring a heatmap and blending it over the image (the three-panel figure is in
:mod:`camtool.explain.figure`)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from camtool.explain.colormaps import colormap_lut

__all__ = ["colorize", "encode_image", "overlay"]


def colorize(heat: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """Map a ``(H, W)`` array in [0, 1] to ``(H, W, 3)`` uint8 colours (matplotlib's table, but
    ``jet`` needs no matplotlib: see :mod:`camtool.explain.colormaps`)."""
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
