"""``camtool eval``'s classification metrics: loss, accuracy, per-class P/R/F1, mistakes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from camtool.core.runner import Runner
from camtool.data.datasets import ImageFolderDataset, SkippedImage
from camtool.errors import CamtoolError
from camtool.evaluation.data import CROP_NOTE, EvalProgress, IndexedDataset, make_loader, oom_error
from camtool.evaluation.metrics import confusion_matrix, per_class_prf, topk_correct

__all__ = ["MAX_MISTAKES", "evaluate_classification"]

MAX_MISTAKES = 16


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
    n_classes = len(names)
    total = len(dataset)
    loss_sum = 0.0
    correct = {1: 0, 5: 0}
    preds: list[Tensor] = []
    targets: list[Tensor] = []
    confidence: list[Tensor] = []
    order: list[Tensor] = []
    skipped: list[SkippedImage] = []
    done = 0
    for images, index, unreadable in make_loader(
        IndexedDataset(dataset), batch_size, workers, runner.device
    ):
        skipped += unreadable
        done += len(index) + len(unreadable)
        if len(index):
            labels = torch.tensor([dataset.samples[int(i)][1] for i in index])
            try:
                logits = runner(images)[0].float().cpu()
            except torch.cuda.OutOfMemoryError:
                raise oom_error() from None
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            for k, hits in topk_correct(logits, labels, (1, 5)).items():
                correct[k] += hits
            probs = logits.softmax(dim=1)
            best = probs.max(dim=1)
            preds.append(best.indices)
            confidence.append(best.values)
            targets.append(labels)
            order.append(index)
        if progress is not None:
            progress("classification", done, total)
    n = sum(len(t) for t in targets)
    if n == 0:
        raise CamtoolError(f"none of the {total} images of {dataset.root} could be read")
    pred, target = torch.cat(preds), torch.cat(targets)
    conf, idx = torch.cat(confidence), torch.cat(order)
    matrix = confusion_matrix(pred, target, n_classes)
    _, _, f1 = per_class_prf(matrix)
    return {
        "n_images": n,
        "skipped": len(skipped),
        "skipped_files": [s.to_dict() for s in skipped],
        "loss": loss_sum / n,
        "top1": correct[1] / n,
        "top5": correct[5] / n,
        "top5_k": min(5, n_classes),
        "macro_f1": float(np.mean(f1)),
        "per_class": _per_class(matrix, names),
        "confusion_matrix": matrix.tolist(),
        "mistakes": _mistakes(dataset, names, pred, target, conf, idx, mistakes),
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
    conf: Tensor,
    idx: Tensor,
    count: int,
) -> list[dict[str, Any]]:
    """The ``count`` wrong predictions made with the highest probability, most confident first."""
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
