"""``camtool eval``'s classification metrics and their figures (confusion matrix, mistakes)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from camtool.core.runner import Runner
from camtool.data.datasets import ImageFolderDataset
from camtool.data.images import load_image
from camtool.errors import CamtoolError, InputError
from camtool.evaluation.data import (
    CROP_NOTE,
    EvalLoop,
    EvalProgress,
    indexed_loader,
    refuse_out_of_memory,
    skipped_fields,
)
from camtool.evaluation.metrics import confusion_matrix, per_class_prf, topk_correct
from camtool.explain.files import explain_image, heatmaps
from camtool.explain.render import FLAT_MAP, overlay

__all__ = [
    "MAX_MISTAKES",
    "agg_figure",
    "confusion_png",
    "evaluate_classification",
    "mistakes_png",
    "png_bytes",
]

MAX_MISTAKES = 16


@refuse_out_of_memory
def evaluate_classification(
    runner: Runner,
    dataset: ImageFolderDataset,
    *,
    batch_size: int = 64,
    workers: int = 0,
    mistakes: int = MAX_MISTAKES,
    progress: EvalProgress | None = None,
) -> dict[str, Any]:
    """Loss, top-1/top-5 accuracy, per-class P/R/F1, confusion matrix and confident mistakes.

    ``mistakes``: how many of the most confident mistakes to keep; ``progress("classification",
    done, total)`` follows each batch.

    Returns:
        A JSON-ready dict, accuracies in [0, 1]; ``mistakes`` lists ``index`` (as ``camtool cam
        --dataset SPLIT --index`` takes it), ``path``, ``true``, ``predicted`` and ``prob``.

    Raises:
        CamtoolError: no image could be read, or the GPU ran out of memory.
    """
    names = runner.info.class_names
    loader = indexed_loader(dataset, None, batch_size, workers, runner.device)
    loop = EvalLoop(loader, "classification", len(dataset), progress)
    loss, hits = 0.0, {1: 0, 5: 0}
    parts: dict[str, list[Tensor]] = {"pred": [], "true": [], "prob": [], "index": []}
    for images, index in loop:
        logits = runner(images)[0].float().cpu()
        labels = torch.tensor([dataset.samples[int(i)][1] for i in index])
        loss += float(F.cross_entropy(logits, labels, reduction="sum"))
        for k, count in topk_correct(logits, labels, tuple(hits)).items():
            hits[k] += count
        best = logits.softmax(dim=1).max(dim=1)
        for key, value in zip(parts, (best.indices, labels, best.values, index), strict=True):
            parts[key].append(value)
    if not parts["true"]:
        raise CamtoolError(f"none of the {len(dataset)} images of {dataset.root} could be read")
    found = {key: torch.cat(values) for key, values in parts.items()}
    n = len(found["true"])
    matrix = confusion_matrix(found["pred"], found["true"], len(names))
    precision, recall, f1 = per_class_prf(matrix)
    support = matrix.sum(axis=1)
    return {
        "n_images": n,
        **skipped_fields(loop.skipped),
        "loss": loss / n,
        "top1": hits[1] / n,
        "top5": hits[5] / n,
        "top5_k": min(5, len(names)),
        "macro_f1": float(np.mean(f1)),
        "per_class": [
            {
                "index": c,
                "name": names[c],
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(support[c]),
            }
            for c in range(len(names))
        ],
        "confusion_matrix": matrix.tolist(),
        "mistakes": _mistakes(dataset, names, found, mistakes),
        "preprocessing": CROP_NOTE,
    }


def _mistakes(
    dataset: ImageFolderDataset, names: Sequence[str], found: dict[str, Tensor], count: int
) -> list[dict[str, Any]]:
    pred, true, prob = found["pred"], found["true"], found["prob"]
    wrong = torch.nonzero(pred != true).flatten()
    ranked = wrong[torch.argsort(prob[wrong], descending=True, stable=True)][: max(0, count)]
    return [
        {
            "index": int(found["index"][j]),
            "path": str(dataset.samples[int(found["index"][j])][0]),
            "true": names[int(true[j])],
            "predicted": names[int(pred[j])],
            "prob": float(prob[j]),
        }
        for j in ranked.tolist()
    ]


def agg_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches at 100 dpi on an Agg canvas (no
    pyplot, so no global state and no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any, *, crop: bool = True) -> bytes:
    """``fig`` laid out (``tight_layout``) as PNG bytes; ``crop``: cut to what is drawn, with a
    0.1 inch margin (else its full size)."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight" if crop else None, pad_inches=0.1)
    return buffer.getvalue()


def confusion_png(matrix: Sequence[Sequence[int]], names: Sequence[str]) -> bytes:
    """The confusion matrix (rows true, columns predicted) drawn with its counts, as PNG."""
    cm = np.asarray(matrix, dtype=np.int64)
    n = cm.shape[0]
    side = min(30.0, max(5.0, 0.45 * n + 3.0))
    fig = agg_figure(side, side)
    ax = fig.subplots()
    shown = ax.imshow(cm, cmap="Blues", interpolation="nearest")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    if n <= 60:
        ax.set_xticks(range(n), labels=list(names), rotation=90)
        ax.set_yticks(range(n), labels=list(names))
    if n <= 25:
        top = cm.max() if cm.size else 0
        for (t, p), count in np.ndenumerate(cm):
            colour = "white" if top and count > top / 2 else "black"
            ax.text(p, t, str(count), ha="center", va="center", color=colour, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    return png_bytes(fig)


@refuse_out_of_memory
def mistakes_png(
    runner: Runner,
    mistakes: Sequence[dict[str, Any]],
    alpha: float,
    colormap: str,
    upsample: str = "aligned",
) -> bytes | None:
    """A grid of the mistakes' images overlaid with the predicted class's map (``upsample`` as
    :func:`camtool.core.maps.heatmap` takes it); ``None`` when none of them can be read."""
    info = runner.info
    panels: list[tuple[Image.Image, str]] = []
    for m in mistakes:
        try:
            image = load_image(Path(m["path"]))
        except InputError:
            continue
        batch = explain_image(runner, image, target=info.class_names.index(m["predicted"]))
        image.thumbnail((256, 256))
        (heat,) = heatmaps(batch, 0, (image.height, image.width), info, upsample)
        title = f"true: {m['true']}\npred: {m['predicted']} ({m['prob']:.2f})"
        if not heat.any():  # min-max normalised: all zero only when the map is constant
            title += f"\n{FLAT_MAP}"
        panels.append((overlay(image, heat, alpha, colormap), title))
    if not panels:
        return None
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = agg_figure(3.2 * cols, 3.5 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (picture, title) in zip(axes, panels, strict=False):
        ax.imshow(np.asarray(picture))
        ax.set_title(title, fontsize=9)
    sep = " " if cols >= 3 else "\n"  # one line needs about three panels' width
    fig.suptitle(f"Most confident mistakes{sep}(map of the predicted class)")
    return png_bytes(fig)
