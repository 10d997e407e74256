"""``camtool eval``'s faithfulness metrics: deletion / insertion AUC, Average Drop / Increase."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from camtool.core.runner import Runner
from camtool.data.datasets import ImageFolderDataset
from camtool.errors import CamtoolError, ConfigError
from camtool.evaluation.data import (
    CROP_NOTE,
    EvalLoop,
    EvalProgress,
    indexed_loader,
    refuse_out_of_memory,
    skipped_fields,
)
from camtool.evaluation.metrics import average_drop_increase, deletion_insertion_auc

__all__ = ["DEFAULT_FAITHFULNESS_IMAGES", "FAITHFULNESS_STEPS", "evaluate_faithfulness"]

DEFAULT_FAITHFULNESS_IMAGES = 256
FAITHFULNESS_STEPS = 16

_MODES: tuple[Literal["deletion", "insertion"], ...] = ("deletion", "insertion")
_SCORES = ("deletion_auc", "insertion_auc", "average_drop", "increase_in_confidence")


@refuse_out_of_memory
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
    """Deletion / insertion AUC and Average Drop / Increase in Confidence of the predicted maps,
    on at most ``max_images`` spread evenly over the split; ``progress("faithfulness", done,
    total)`` counts forward-pass images, ``2 * (steps + 1) + 2`` per image.

    Returns:
        A JSON-ready dict: ``deletion_auc`` and ``insertion_auc`` in [0, 1]; ``average_drop`` and
        ``increase_in_confidence`` in percent.

    Raises:
        ConfigError: ``max_images`` below 1.
        CamtoolError: no image could be read, or the GPU ran out of memory.
    """
    if max_images < 1:
        raise ConfigError(f"the number of faithfulness images must be at least 1, not {max_images}")
    chosen = list(range(len(dataset)))
    if max_images < len(dataset):
        spread = np.rint(np.linspace(0, len(dataset) - 1, max_images))
        chosen = sorted(set(spread.astype(int).tolist()))
    loader = indexed_loader(dataset, chosen, batch_size, workers, runner.device)
    loop = EvalLoop(loader, "faithfulness", len(chosen), progress, cost=2 * (steps + 1) + 2)
    scores: dict[str, list[Tensor]] = {name: [] for name in _SCORES}
    for images, _ in loop:
        found = _score_batch(runner, images.to(runner.device), steps, batch_size, upsample, loop)
        for name, score in zip(_SCORES, found, strict=True):
            scores[name].append(score)
    if not scores["deletion_auc"]:
        raise CamtoolError("none of the images chosen for the faithfulness metrics could be read")
    means = {name: float(torch.cat(values).float().mean()) for name, values in scores.items()}
    return {
        "n_images": sum(len(d) for d in scores["deletion_auc"]),
        **skipped_fields(loop.skipped),
        **means,
        "increase_in_confidence": means["increase_in_confidence"] * 100.0,
        "steps": steps,
        "target": "predicted class",
        "insertion_start": "blur",
        "upsample": upsample,
        "preprocessing": CROP_NOTE,
    }


def _score_batch(
    runner: Runner, x: Tensor, steps: int, batch_size: int, upsample: str, loop: EvalLoop
) -> tuple[Tensor, ...]:

    def model_fn(batch: Tensor) -> Tensor:
        return runner(batch)[0]

    n = x.shape[0]
    logits, cams = runner(x)
    target = logits.argmax(dim=1)
    sal = cams[torch.arange(n, device=cams.device), target.to(cams.device)].float()
    shared: dict[str, Any] = {"upsample": upsample, "geometry": runner.info.geometry}
    passes = 0  # this batch's forward-pass images before the current metric's

    def report(done: int, _total: int) -> None:
        loop.report(passes + done)

    found = []
    for mode in _MODES:
        auc = deletion_insertion_auc(
            model_fn, x, sal, target, steps, batch_size, mode, progress=report, **shared
        )
        found.append(auc.float().cpu())
        passes += n * (steps + 1)
    drop, increase = average_drop_increase(
        model_fn, x, sal, target, batch_size, progress=report, **shared
    )
    return (*found, drop.float().cpu(), increase.cpu())
