"""``camtool eval``'s classification metrics: loss, accuracy, per-class P/R/F1, mistakes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
)
from camtool.evaluation.metrics import confusion_matrix, per_class_prf, topk_correct

__all__ = ["MAX_MISTAKES", "evaluate_classification"]

MAX_MISTAKES = 16


@dataclass
class _Predictions:
    """What one pass over the split found: sums, and per image its prediction and file."""

    loss_sum: float = 0.0
    correct: dict[int, int] = field(default_factory=lambda: {1: 0, 5: 0})
    preds: list[Tensor] = field(default_factory=list)
    targets: list[Tensor] = field(default_factory=list)
    confidence: list[Tensor] = field(default_factory=list)
    order: list[Tensor] = field(default_factory=list)

    def add(self, logits: Tensor, labels: Tensor, index: Tensor) -> None:
        """Add a batch: float ``logits [B, C]`` on the CPU, ``labels [B]``, sample ``index [B]``."""
        self.loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        for k, hits in topk_correct(logits, labels, tuple(self.correct)).items():
            self.correct[k] += hits
        best = logits.softmax(dim=1).max(dim=1)
        self.preds.append(best.indices)
        self.confidence.append(best.values)
        self.targets.append(labels)
        self.order.append(index)


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

    Args:
        runner: the model.
        dataset: the split, with the evaluation transform (see :func:`split_dataset`).
        batch_size: images per forward pass.
        workers: DataLoader worker processes.
        mistakes: how many of the most confident mistakes to keep.
        progress: ``progress("classification", done, total)`` after each batch.

    Returns:
        A JSON-ready dict; accuracies are fractions in [0, 1]. ``mistakes`` lists ``path``,
        ``true``, ``predicted`` and ``prob`` (the predicted class's probability), most confident
        first.

    Raises:
        CamtoolError: no image could be read, or the GPU ran out of memory.
    """
    names = runner.info.class_names
    loader = indexed_loader(dataset, None, batch_size, workers, runner.device)
    loop = EvalLoop(loader, "classification", len(dataset), progress)
    found = _Predictions()
    for images, index in loop:
        labels = torch.tensor([dataset.samples[int(i)][1] for i in index])
        found.add(runner(images)[0].float().cpu(), labels, index)
    if not found.targets:
        raise CamtoolError(f"none of the {len(dataset)} images of {dataset.root} could be read")
    pred, target = torch.cat(found.preds), torch.cat(found.targets)
    n = len(target)
    matrix = confusion_matrix(pred, target, len(names))
    _, _, f1 = per_class_prf(matrix)
    wrong = _mistakes(dataset, names, pred, target, found, mistakes)
    return {
        "n_images": n,
        "skipped": len(loop.skipped),
        "skipped_files": loop.skipped_dicts(),
        "loss": found.loss_sum / n,
        "top1": found.correct[1] / n,
        "top5": found.correct[5] / n,
        "top5_k": min(5, len(names)),
        "macro_f1": float(np.mean(f1)),
        "per_class": _per_class(matrix, names),
        "confusion_matrix": matrix.tolist(),
        "mistakes": wrong,
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
    dataset: ImageFolderDataset,
    names: Sequence[str],
    pred: Tensor,
    target: Tensor,
    found: _Predictions,
    count: int,
) -> list[dict[str, Any]]:
    """The ``count`` wrong predictions made with the highest probability, most confident first."""
    conf, idx = torch.cat(found.confidence), torch.cat(found.order)
    wrong = torch.nonzero(pred != target).flatten()
    ranked = wrong[torch.argsort(conf[wrong], descending=True, stable=True)][: max(0, count)]
    return [
        {
            "path": str(dataset.samples[int(idx[j])][0]),
            "true": names[int(target[j])],
            "predicted": names[int(pred[j])],
            "prob": float(conf[j]),
        }
        for j in ranked.tolist()
    ]
