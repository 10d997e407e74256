"""Drawing maps: colouring a heatmap, blending it over the image, and the three-panel figure."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from camtool.fsutil import atomic_write_bytes

__all__ = ["colorize", "colormap_names", "encode_image", "figure_png", "overlay", "save_image"]


def colormap_names() -> list[str]:
    """Every colormap name matplotlib knows."""
    from matplotlib import colormaps

    return list(colormaps)


def colorize(heat: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """Map a ``(H, W)`` array in [0, 1] to ``(H, W, 3)`` uint8 colours."""
    from matplotlib import colormaps

    lut = (colormaps[colormap].resampled(256)(np.arange(256))[:, :3] * 255).astype(np.uint8)
    return lut[np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8)]


def overlay(
    image: Image.Image, heat: np.ndarray, alpha: float = 0.5, colormap: str = "jet"
) -> Image.Image:
    """Blend the coloured heatmap over ``image`` (same size): ``alpha`` is the heatmap's weight."""
    colour = Image.fromarray(colorize(heat, colormap))
    return Image.blend(image.convert("RGB"), colour, alpha)


def figure_png(
    image: Image.Image, heat: np.ndarray, blended: Image.Image, title: str, colormap: str = "jet"
) -> bytes:
    """The reference's figure, original | heatmap | overlay, titled, as PNG bytes.

    A constant map (``heat`` all one value) points nowhere: the heatmap panel and the title
    say "flat map: no peak, no box" instead of showing an even colour without comment.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    aspect = image.height / max(image.width, 1)
    fig = Figure(figsize=(12, 4 * aspect + 0.8), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    flat = heat.size == 0 or float(np.max(heat)) == float(np.min(heat))
    panels = (
        ("Original", np.asarray(image)),
        ("CAM heatmap: flat" if flat else "CAM heatmap", heat),
        ("Overlay", np.asarray(blended)),
    )
    for ax, (name, data) in zip(axes, panels, strict=True):
        ax.imshow(
            data,
            cmap=colormap if data.ndim == 2 else None,
            vmin=0,
            vmax=1 if data.ndim == 2 else None,
        )
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(f"{title} - flat map: no peak, no box" if flat else title)
    fig.tight_layout()
    buffer = io.BytesIO()
    # Cropped to what is drawn: the panels are as wide as the figure allows, so their
    # height (and the figure's) is only estimated above; this removes the empty band.
    fig.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.1)
    return buffer.getvalue()


def encode_image(image: Image.Image, fmt: str = "png", quality: int = 90) -> bytes:
    """Encode a PIL image as PNG or JPEG bytes."""
    buffer = io.BytesIO()
    if fmt.lower() in ("jpg", "jpeg"):
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def save_image(image: Image.Image, path: Path, fmt: str = "png") -> None:
    """Write an image atomically (format ``png`` or ``jpg``)."""
    atomic_write_bytes(path, encode_image(image, fmt))
