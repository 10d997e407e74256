"""The held-out pass of :mod:`camtool.training.loop`: loss and accuracy of a model on a loader."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from camtool.core.device import autocast, to_device
from camtool.errors import CamtoolError
from camtool.evaluation.data import unique_skipped

__all__ = ["Evaluation", "eval_sums", "evaluate"]


@dataclass
class Evaluation:
    """Loss and accuracy of a model on a dataset."""

    loss: float  #: mean cross-entropy
    accuracy: float  #: fraction of images classified right
    images: int  #: images evaluated
    skipped: int  #: unreadable images left out
    skipped_files: list[dict[str, str]] = field(default_factory=list)  #: ``{"path", "error"}``


def evaluate(model: nn.Module, loader: DataLoader[Any], device: torch.device) -> Evaluation:
    """Evaluate ``model`` on every batch of ``loader`` (batches of ``collate_skip_none``).

    Raises:
        CamtoolError: the loader yielded no readable image.
    """
    named: dict[str, dict[str, str]] = {}
    sums = eval_sums(model, loader, device, skipped_into=named)
    loss_sum, correct, count, skipped = (float(v) for v in sums.tolist())
    if count == 0:
        raise CamtoolError("no readable image to evaluate")
    files = unique_skipped(named.values())
    return Evaluation(loss_sum / count, correct / count, int(count), int(skipped), files)


def eval_sums(
    model: nn.Module,
    loader: DataLoader[Any],
    device: torch.device,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    should_stop: Callable[[], bool] | None = None,
    skipped_into: dict[str, dict[str, str]] | None = None,
) -> Tensor:
    """``[loss sum, hits, images, skipped]`` of ``model`` over ``loader`` (float64, on device);
    unreadable images go into ``skipped_into`` (path -> ``{"path", "error"}``).

    Raises:
        KeyboardInterrupt: ``should_stop()`` turned true (checked after each batch).
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    try:
        with torch.inference_mode():
            for images, labels, skipped in loader:
                sums[3] += len(skipped)
                if skipped_into is not None:
                    skipped_into.update((s.path, s.to_dict()) for s in skipped)
                if labels.numel():
                    images = to_device(images, device, channels_last=channels_last)
                    labels = labels.to(device, non_blocking=True)
                    with autocast(device, amp_dtype):
                        logits = model(images)
                    sums[0] += F.cross_entropy(logits.float(), labels, reduction="sum")
                    sums[1] += (logits.argmax(dim=1) == labels).sum()
                    sums[2] += labels.numel()
                if should_stop is not None and should_stop():
                    raise KeyboardInterrupt
    finally:
        model.train(was_training)
    return sums
