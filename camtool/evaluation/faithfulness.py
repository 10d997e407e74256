"""``camtool eval``'s faithfulness metrics: deletion / insertion AUC, Average Drop / Increase."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from camtool.core.runner import Runner
from camtool.data.datasets import ImageFolderDataset, SkippedImage
from camtool.errors import CamtoolError, ConfigError
from camtool.evaluation.data import CROP_NOTE, EvalProgress, IndexedDataset, make_loader, oom_error
from camtool.evaluation.metrics import average_drop_increase, deletion_insertion_auc

__all__ = ["DEFAULT_FAITHFULNESS_IMAGES", "FAITHFULNESS_STEPS", "evaluate_faithfulness"]

DEFAULT_FAITHFULNESS_IMAGES = 256
FAITHFULNESS_STEPS = 16


def _spread(n: int, k: int) -> list[int]:
    """``min(n, k)`` indices spread evenly over ``range(n)``."""
    if k >= n:
        return list(range(n))
    return sorted(set(np.rint(np.linspace(0, n - 1, k)).astype(int).tolist()))


def evaluate_faithfulness(
    runner: Runner,
    dataset: ImageFolderDataset,
    *,
    max_images: int = DEFAULT_FAITHFULNESS_IMAGES,
    batch_size: int = 64,
    workers: int = 0,
    steps: int = FAITHFULNESS_STEPS,
    progress: EvalProgress | None = None,
    upsample: str = "aligned",
) -> dict[str, Any]:
    """Deletion / insertion AUC and Average Drop / Increase in Confidence of the predicted maps.

    Args:
        runner: the model.
        dataset: the split, with the evaluation transform.
        max_images: most images used, spread evenly over the split.
        batch_size: images per forward pass (perturbed copies included).
        workers: DataLoader worker processes.
        steps: deletion/insertion increments.
        progress: ``progress("faithfulness", done, total)``, counted in forward-pass images.
        upsample: how the maps are brought to the input's pixels to rank them, ``"aligned"``
            or ``"conventional"`` (see :func:`camtool.core.maps.heatmap`).

    Returns:
        A JSON-ready dict: ``deletion_auc`` (lower is better) and ``insertion_auc`` (higher is
        better), in [0, 1]; ``average_drop`` and ``increase_in_confidence``, in percent.

    Raises:
        ConfigError: ``max_images`` below 1.
        CamtoolError: no image could be read, or the GPU ran out of memory.
    """
    if max_images < 1:
        raise ConfigError(f"the number of faithfulness images must be at least 1, not {max_images}")
    chosen = _spread(len(dataset), max_images)
    per_image = 2 * (steps + 1) + 2
    total = len(chosen) * per_image
    device = runner.device

    deletion: list[Tensor] = []
    insertion: list[Tensor] = []
    drops: list[Tensor] = []
    increases: list[Tensor] = []
    skipped: list[SkippedImage] = []
    base = 0
    for images, index, unreadable in make_loader(
        IndexedDataset(dataset, chosen), batch_size, workers, device
    ):
        skipped += unreadable
        base += len(unreadable) * per_image
        if not len(index):
            continue
        x = images.to(device)
        n = x.shape[0]
        offset = [base]

        def report(done: int, _total: int, offset: list[int] = offset) -> None:
            if progress is not None:
                progress("faithfulness", offset[0] + done, total)

        try:
            scores = _score_batch(runner, x, steps, batch_size, upsample, report, offset)
        except torch.cuda.OutOfMemoryError:
            raise oom_error() from None
        for into, score in zip((deletion, insertion, drops, increases), scores, strict=True):
            into.append(score)
        base += n * per_image
        if progress is not None:
            progress("faithfulness", base, total)
    if not deletion:
        raise CamtoolError("none of the images chosen for the faithfulness metrics could be read")
    return {
        "n_images": sum(len(d) for d in deletion),
        "skipped": len(skipped),
        "skipped_files": [s.to_dict() for s in skipped],
        "deletion_auc": float(torch.cat(deletion).mean()),
        "insertion_auc": float(torch.cat(insertion).mean()),
        "average_drop": float(torch.cat(drops).mean()),
        "increase_in_confidence": float(torch.cat(increases).float().mean() * 100.0),
        "steps": steps,
        "target": "predicted class",
        "insertion_start": "blur",
        "upsample": upsample,
        "preprocessing": CROP_NOTE,
    }


def _score_batch(
    runner: Runner,
    x: Tensor,
    steps: int,
    batch_size: int,
    upsample: str,
    report: Callable[[int, int], None],
    offset: list[int],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Deletion AUC, insertion AUC, drop and increase (on the CPU) of one batch ``x`` of inputs,
    each ranked by the map of the predicted class; ``offset[0]`` advances as the passes go."""

    def model_fn(batch: Tensor) -> Tensor:
        return runner(batch)[0]

    n = x.shape[0]
    logits, cams = runner(x)
    target = logits.argmax(dim=1)
    sal = cams[torch.arange(n, device=cams.device), target.to(cams.device)].float()
    aucs = []
    for mode in ("deletion", "insertion"):
        auc = deletion_insertion_auc(
            model_fn,
            x,
            sal,
            target,
            steps,
            batch_size,
            mode,
            progress=report,
            upsample=upsample,
            geometry=runner.info.geometry,
        )
        aucs.append(auc.float().cpu())
        offset[0] += n * (steps + 1)
    drop, inc = average_drop_increase(
        model_fn,
        x,
        sal,
        target,
        batch_size,
        progress=report,
        upsample=upsample,
        geometry=runner.info.geometry,
    )
    return aucs[0], aucs[1], drop.float().cpu(), inc.cpu()
