"""Drawing maps: colouring a heatmap, blending it over the image, and ``camtool cam``'s three-panel
figure (original | heatmap | overlay), drawn with Pillow: matplotlib's import alone costs more
than a one-image ONNX call. ``jet`` is built here from its segment data (MATLAB's, matplotlib's);
other colormaps come from matplotlib, imported only then."""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

__all__ = [
    "FLAT_MAP",
    "LUT_SIZE",
    "PANEL_WIDTH",
    "WRONG_RGB",
    "colorize",
    "colormap_lut",
    "encode_image",
    "figure_png",
    "overlay",
]

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
    """A ``(256, 3)`` uint8 table, row ``i`` the colour of heat ``i / 255``, of ``jet`` or any
    matplotlib colormap (a ``KeyError`` for an unknown name)."""
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


def encode_image(image: Image.Image, fmt: str = "png") -> bytes:
    """Encode a PIL image as PNG or JPEG (quality 90) bytes."""
    buffer = io.BytesIO()
    if fmt.lower() in ("jpg", "jpeg"):
        image.convert("RGB").save(buffer, format="JPEG", quality=90)
    else:
        image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


#: Width of each of the three panels, in pixels.
PANEL_WIDTH = 400
#: Tallest panel, in multiples of its width (taller images are shrunk to fit).
_MAX_PANEL_ASPECT = 2.5
#: What a figure's title says of a constant map (min-max normalised to all zeros).
FLAT_MAP = "flat map: no peak, no box"
#: Colour of the title of a figure whose prediction is not the image's true class.
WRONG_RGB: tuple[int, int, int] = (200, 30, 30)
_MARGIN = 12
_TITLE_SIZE = 22
_CAPTION_SIZE = 18


@lru_cache(maxsize=4)
def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def _centred_text(
    draw: ImageDraw.ImageDraw, centre_x: int, top: int, text: str, size: int, fill: Any = "black"
) -> None:
    font = _font(size)
    left, ink_top, right, _ = draw.textbbox((0, 0), text, font=font)
    draw.text((centre_x - (right - left) // 2, top - ink_top), text, fill=fill, font=font)


def figure_png(
    image: Image.Image,
    heat: np.ndarray,
    blended: Image.Image,
    title: str,
    colormap: str = "jet",
    wrong: bool = False,
) -> bytes:
    """The reference's figure, original | heatmap | overlay, titled, as PNG bytes.

    Args:
        image: the RGB image, ``W x H``.
        heat: ``(H, W)`` float map in [0, 1].
        blended: the overlay of ``heat`` on ``image``, ``W x H``.
        title: e.g. ``"dog (p = 0.912)"``; drawn in :data:`WRONG_RGB` when ``wrong``.
        colormap: colormap of the heatmap panel.

    Returns:
        A PNG of three captioned panels ``PANEL_WIDTH`` px wide (narrower for very tall images)
        under the title, a constant map said flat in both; text chunks ``Title`` and
        ``Description`` (the captions, ``" | "``-joined).
    """
    flat = heat.size == 0 or float(np.max(heat)) == float(np.min(heat))
    if flat:
        title = f"{title} - {FLAT_MAP}"
    aspect = image.height / max(image.width, 1)
    panel_w, panel_h = PANEL_WIDTH, max(1, round(PANEL_WIDTH * aspect))
    if aspect > _MAX_PANEL_ASPECT:
        panel_h = round(PANEL_WIDTH * _MAX_PANEL_ASPECT)
        panel_w = max(1, round(panel_h / aspect))
    column = PANEL_WIDTH + _MARGIN
    title_h, caption_h = _TITLE_SIZE + 2 * _MARGIN, _CAPTION_SIZE + _MARGIN
    canvas = Image.new(
        "RGB", (3 * column + _MARGIN, title_h + caption_h + panel_h + _MARGIN), (255, 255, 255)
    )
    draw = ImageDraw.Draw(canvas)
    fill = WRONG_RGB if wrong else (0, 0, 0)
    _centred_text(draw, canvas.width // 2, _MARGIN, title, _TITLE_SIZE, fill)
    heat_image = Image.fromarray(colorize(heat, colormap))
    heat_caption = "CAM heatmap: flat" if flat else "CAM heatmap"
    panels = (("Original", image.convert("RGB")), (heat_caption, heat_image), ("Overlay", blended))
    for i, (caption, panel) in enumerate(panels):
        centre = _MARGIN + i * column + PANEL_WIDTH // 2
        _centred_text(draw, centre, title_h, caption, _CAPTION_SIZE)
        shown = panel.resize((panel_w, panel_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
        canvas.paste(shown, (centre - panel_w // 2, title_h + caption_h))
    info = PngInfo()
    info.add_text("Title", title)
    info.add_text("Description", " | ".join(caption for caption, _ in panels))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", compress_level=3, pnginfo=info)
    return buffer.getvalue()
