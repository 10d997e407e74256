"""``camtool eval``'s figures: the confusion matrix and the grid of confident mistakes, as PNG."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from camtool.core.maps import heatmap
from camtool.core.runner import Runner
from camtool.data.images import load_image, preprocess
from camtool.errors import InputError
from camtool.evaluation.data import refuse_out_of_memory
from camtool.explain.render import overlay

__all__ = ["confusion_png", "mistakes_png"]


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    """The figure as PNG, cropped to what is drawn plus a small margin."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.1)
    return buffer.getvalue()


def confusion_png(matrix: Sequence[Sequence[int]], names: Sequence[str]) -> bytes:
    """The confusion matrix (rows true, columns predicted) drawn with its counts, as PNG."""
    cm = np.asarray(matrix, dtype=np.int64)
    n = cm.shape[0]
    side = min(30.0, max(5.0, 0.45 * n + 3.0))
    fig = _figure(side, side)
    ax = fig.subplots()
    shown = ax.imshow(cm, cmap="Blues", interpolation="nearest")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    if n <= 60:
        ax.set_xticks(range(n), labels=list(names), rotation=90)
        ax.set_yticks(range(n), labels=list(names))
    if n <= 25:
        top = cm.max() if cm.size else 0
        for t in range(n):
            for p in range(n):
                colour = "white" if top and cm[t, p] > top / 2 else "black"
                ax.text(p, t, str(cm[t, p]), ha="center", va="center", color=colour, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    return _png(fig)


@refuse_out_of_memory
def mistakes_png(
    runner: Runner,
    mistakes: Sequence[dict[str, Any]],
    alpha: float,
    colormap: str,
    upsample: str = "aligned",
) -> bytes | None:
    """A grid of the mistakes' images, each overlaid with the map of the class predicted
    (upsampled to the thumbnail the ``upsample`` way, see :func:`camtool.core.maps.heatmap`);
    ``None`` when no image of them can be read."""
    info = runner.info
    panels: list[tuple[Image.Image, str]] = []
    for m in mistakes:
        try:
            image = load_image(Path(m["path"]))
        except InputError:
            continue
        tensor = preprocess(image, info.img_size, info.mean, info.std, stride=info.output_stride)
        _, cams = runner(tensor[None])
        cls = info.class_names.index(m["predicted"])
        image.thumbnail((256, 256))
        heat = heatmap(
            cams[0, cls].float().cpu(),
            (image.height, image.width),
            mode=upsample,
            geometry=info.geometry,
            input_hw=(int(tensor.shape[-2]), int(tensor.shape[-1])),
        )
        title = f"true: {m['true']}\npred: {m['predicted']} ({m['prob']:.2f})"
        if not heat.any():  # min-max normalised: all zero only when the map is constant
            title += "\nflat map: no peak, no box"
        panels.append((overlay(image, heat, alpha, colormap), title))
    if not panels:
        return None
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = _figure(3.2 * cols, 3.5 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (picture, title) in zip(axes, panels, strict=False):
        ax.imshow(np.asarray(picture))
        ax.set_title(title, fontsize=9)
    # One line needs about three panels' width; fewer panels get the title on two lines.
    sep = " " if cols >= 3 else "\n"
    fig.suptitle(f"Most confident mistakes{sep}(map of the predicted class)")
    return _png(fig)
