"""``camtool eval``'s classification metrics: loss, accuracy, per-class P/R/F1, mistakes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from camtool.core.runner import Runner
from camtool.data.datasets import ImageFolderDataset
from camtool.errors import CamtoolError
from camtool.evaluation.data import (
    CROP_NOTE,
    EvalLoop,
    EvalProgress,
    indexed_loader,
    refuse_out_of_memory,
    skipped_fields,
)
from camtool.evaluation.metrics import confusion_matrix, per_class_prf, topk_correct

__all__ = ["MAX_MISTAKES", "evaluate_classification"]

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

    ``dataset`` is the split with the evaluation transform; ``mistakes`` how many of the most
    confident mistakes to keep; ``progress("classification", done, total)`` follows each batch.

    Returns:
        A JSON-ready dict; accuracies are fractions in [0, 1]. ``mistakes`` lists ``index``
        (as ``camtool cam --dataset SPLIT --index`` takes it), ``path``, ``true``, ``predicted``
        and ``prob`` (the predicted class's probability), most confident first.

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
    return {
        "n_images": n,
        **skipped_fields(loop.skipped),
        "loss": loss / n,
        "top1": hits[1] / n,
        "top5": hits[5] / n,
        "top5_k": min(5, len(names)),
        "macro_f1": float(np.mean(per_class_prf(matrix)[2])),
        "per_class": _per_class(matrix, names),
        "confusion_matrix": matrix.tolist(),
        "mistakes": _mistakes(dataset, names, found, mistakes),
        "preprocessing": CROP_NOTE,
    }


def _per_class(matrix: np.ndarray, names: Sequence[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support of each class, from the confusion matrix."""
    precision, recall, f1 = per_class_prf(matrix)
    support = matrix.sum(axis=1)
    return [
        {
            "index": c,
            "name": names[c],
            "precision": float(precision[c]),
            "recall": float(recall[c]),
            "f1": float(f1[c]),
            "support": int(support[c]),
        }
        for c in range(len(names))
    ]


def _mistakes(
    dataset: ImageFolderDataset, names: Sequence[str], found: dict[str, Tensor], count: int
) -> list[dict[str, Any]]:
    """The ``count`` most confident wrong predictions of ``found``'s ``[N]`` tensors."""
    pred, true, prob = found["pred"], found["true"], found["prob"]
    wrong = torch.nonzero(pred != true).flatten()
    ranked = wrong[torch.argsort(prob[wrong], descending=True, stable=True)][: max(0, count)]
    return [
        {
            "index": int(found["index"][j]),  # `camtool cam --dataset SPLIT --index` redraws it
            "path": str(dataset.samples[int(found["index"][j])][0]),
            "true": names[int(true[j])],
            "predicted": names[int(pred[j])],
            "prob": float(prob[j]),
        }
        for j in ranked.tolist()
    ]
