"""Metrics for ``camtool eval`` on torch batches: classification, and map faithfulness.

Faithfulness needs no boxes: :func:`deletion_insertion_auc` (Petsiuk et al., RISE, BMVC 2018)
and :func:`average_drop_increase` (Chattopadhay et al., Grad-CAM++, WACV 2018), on normalised
model inputs (0 is the mean colour). Box localization is in
:mod:`camtool.evaluation.localization_metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from camtool.core.maps import heatmap
from camtool.core.upsample import CellGeometry
from camtool.errors import ConfigError, InputError

__all__ = [
    "ModelFn",
    "ProgressFn",
    "average_drop_increase",
    "confusion_matrix",
    "deletion_insertion_auc",
    "per_class_prf",
    "to_numpy",
    "topk_correct",
]

ModelFn = Callable[[Tensor], Tensor]
"""Maps images ``[B, C, H, W]`` to logits ``[B, num_classes]``."""

ProgressFn = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each model call, in images fed to the model."""


def to_numpy(values: Tensor | np.ndarray | Sequence[int] | Sequence[bool]) -> np.ndarray:
    """``values`` as a NumPy array (a tensor is detached and copied from its device)."""
    if isinstance(values, Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def topk_correct(logits: Tensor, targets: Tensor, ks: Iterable[int] = (1, 5)) -> dict[int, int]:
    """``{k: how many samples have their target among the k highest logits}`` of ``[N, C]``
    ``logits`` and ``[N]`` class indices; a ``k`` above ``C`` counts every sample.

    Raises:
        ConfigError: if a ``k`` is below 1.
        InputError: if the shapes do not match.
    """
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ConfigError(f"top-k values must be at least 1, got {ks}")
    if logits.ndim != 2 or targets.ndim != 1 or logits.shape[0] != targets.shape[0]:
        raise InputError(
            f"expected logits [N, C] and targets [N], got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}"
        )
    n_classes = logits.shape[1]
    kmax = min(max(ks), n_classes)
    if logits.shape[0] == 0 or kmax == 0:
        return {k: 0 for k in ks}
    top = logits.topk(kmax, dim=1).indices
    hit = top == targets.to(top.device).reshape(-1, 1)
    return {k: int(hit[:, : min(k, n_classes)].any(dim=1).sum().item()) for k in ks}


def confusion_matrix(
    preds: Tensor | np.ndarray | Sequence[int], targets: Tensor | np.ndarray | Sequence[int], n: int
) -> np.ndarray:
    """The ``[n, n]`` int64 confusion matrix of ``[N]`` predicted and true class indices:
    entry ``[t, p]`` counts samples of class ``t`` predicted as ``p``.

    Raises:
        ConfigError: if ``n`` is below 1.
        InputError: if the lengths differ or an index is outside ``[0, n)``.
    """
    if n < 1:
        raise ConfigError(f"the number of classes must be at least 1, got {n}")
    p = to_numpy(preds).astype(np.int64).ravel()
    t = to_numpy(targets).astype(np.int64).ravel()
    if p.shape != t.shape:
        raise InputError(f"got {p.size} predictions for {t.size} targets")
    if p.size and (min(p.min(), t.min()) < 0 or max(p.max(), t.max()) >= n):
        raise InputError(f"class indices must lie in [0, {n})")
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n).astype(np.int64)


def per_class_prf(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class ``(precision, recall, f1)`` of a :func:`confusion_matrix`, float64 ``[n]``
    each; 0 where undefined (a class never predicted, never present, or P + R = 0).

    Raises:
        InputError: if the matrix is not square.
    """
    cm = np.asarray(confusion, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise InputError(f"a confusion matrix must be square, got shape {cm.shape}")
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    actual = cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)
    return precision, recall, f1


def _heatmaps(
    saliency: Tensor, images: Tensor, upsample: str, geometry: CellGeometry | None
) -> Tensor:
    """Float32 ``[N, H, W]`` maps in [0, 1] at the images' size, by :func:`heatmap`."""
    n, size = images.shape[0], (int(images.shape[-2]), int(images.shape[-1]))
    if saliency.ndim != 3 or saliency.shape[0] != n:
        raise InputError(f"saliency must be [{n}, h, w], got {tuple(saliency.shape)}")
    if not torch.isfinite(saliency).all():
        raise InputError("the saliency maps contain NaN or infinite values")
    mode = "conventional" if tuple(saliency.shape[-2:]) == size else upsample  # identity
    maps = [heatmap(m, size, mode=mode, geometry=geometry) for m in saliency.detach()]
    out = np.stack(maps) if maps else np.zeros((0, *size), dtype=np.float32)
    return torch.from_numpy(out).to(images.device)


def _check_inputs(images: Tensor, target: Tensor, batch_size: int) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    if images.ndim != 4:
        raise InputError(f"images must be [N, C, H, W], got {tuple(images.shape)}")
    if target.ndim != 1 or target.shape[0] != images.shape[0]:
        raise InputError(f"target must be [{images.shape[0]}], got {tuple(target.shape)}")


def _variant_probs(
    model_fn: ModelFn,
    target: Tensor,
    shape: tuple[int, int],
    variant: Callable[[Tensor, Tensor], Tensor],
    batch_size: int,
    progress: ProgressFn | None,
) -> Tensor:
    """``[N, V]`` target probabilities of the copies ``variant(image_idx, variant_idx)``."""
    n, per_image = shape
    total = n * per_image
    device = target.device
    scores = torch.empty(total, device=device, dtype=torch.float32)
    with torch.no_grad():
        for lo in range(0, total, batch_size):
            idx = torch.arange(lo, min(lo + batch_size, total), device=device)
            img, var = idx // per_image, idx % per_image
            logits = model_fn(variant(img, var))
            if logits.ndim != 2 or logits.shape[0] != idx.numel():
                raise InputError(
                    f"the model must return logits [{idx.numel()}, C], got {tuple(logits.shape)}"
                )
            if lo == 0 and (int(target.min()) < 0 or int(target.max()) >= logits.shape[1]):
                raise InputError(f"target classes must lie in [0, {logits.shape[1]})")
            tgt = target[img].to(logits.device).long()
            probs = torch.softmax(logits.float(), dim=1).gather(1, tgt[:, None])[:, 0]
            scores[lo : lo + idx.numel()] = probs.to(device)
            if progress is not None:
                progress(lo + idx.numel(), total)
    return scores.reshape(n, per_image)


def _gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur (kernel truncated at 2 sigma, edges replicated)."""
    radius = max(1, math.ceil(2 * sigma))
    xs = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float32)
    kernel = torch.exp(-(xs**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).to(images.dtype)
    c = images.shape[1]
    kx = kernel.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = kernel.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1)
    out = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="replicate"), kx, groups=c)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), ky, groups=c)


def _curve_ends(
    images: Tensor, mode: str, insertion_start: str, blur_sigma: float
) -> tuple[Tensor, Tensor]:
    """The images at the first and last step of the curve."""
    if mode not in ("deletion", "insertion"):
        raise ConfigError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    if insertion_start not in ("blur", "baseline"):
        raise ConfigError(f"insertion start must be 'blur' or 'baseline', got {insertion_start!r}")
    if not blur_sigma > 0:
        raise ConfigError(f"the blur sigma must be above 0, got {blur_sigma}")
    if mode == "deletion":
        return images, torch.zeros_like(images)
    if insertion_start == "blur":
        return _gaussian_blur(images, blur_sigma), images
    return torch.zeros_like(images), images


def deletion_insertion_auc(
    model_fn: ModelFn,
    images: Tensor,
    saliency: Tensor,
    target: Tensor,
    steps: int = 16,
    batch_size: int = 64,
    mode: Literal["deletion", "insertion"] = "deletion",
    insertion_start: Literal["blur", "baseline"] = "blur",
    blur_sigma: float = 5.0,
    progress: ProgressFn | None = None,
    *,
    upsample: str = "aligned",
    geometry: CellGeometry | None = None,
) -> Tensor:
    """Deletion or insertion AUC of saliency maps (Petsiuk et al., RISE, BMVC 2018).

    Pixels are ranked by the map (brought to the image by :func:`camtool.core.maps.heatmap`
    the ``upsample`` way, ``geometry`` giving the cells' places; a flat map is all zeros; ties
    keep raster order). At step ``k`` of ``steps`` the ``round(k / steps * H * W)`` most salient
    pixels (all channels) are changed: ``deletion`` sets them to 0 in the model's normalised
    input space (the dataset's mean colour; lower is better); ``insertion`` starts from the
    image blurred (``insertion_start="blur"``, Gaussian of ``blur_sigma`` pixels) or from 0
    (``"baseline"``) and puts the original pixels back (higher is better). The curve is the
    target class's softmax probability at the ``steps + 1`` points, its area taken with the
    trapezoid rule over the fraction of pixels changed.

    ``images`` are ``[N, C, H, W]`` normalised model inputs, ``saliency`` ``[N, h, w]`` maps
    (any scale, at most the images' size), ``target`` ``[N]`` the tracked class; ``model_fn``
    is called on at most ``batch_size`` images, ``progress(done, total)`` counts them.

    Returns:
        ``[N]`` float32 AUCs in [0, 1], on the images' device.

    Raises:
        ConfigError: a setting out of range, or ``"aligned"`` without a geometry.
        InputError: the shapes or the model's output do not fit.
    """
    _check_inputs(images, target, batch_size)
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}")
    start, end = _curve_ends(images.detach(), mode, insertion_start, blur_sigma)
    n, _, h, w = images.shape
    sal = _heatmaps(saliency, images, upsample, geometry).reshape(n, h * w)
    order = torch.argsort(sal, dim=1, descending=True, stable=True)
    rank = torch.argsort(order, dim=1)  # the inverse permutation: each pixel's place in order
    counts = torch.tensor([round(k * h * w / steps) for k in range(steps + 1)], device=rank.device)

    def variant(img: Tensor, step: Tensor) -> Tensor:
        changed = (rank[img] < counts[step][:, None]).reshape(-1, 1, h, w)
        return torch.where(changed, end[img], start[img])

    shape = (n, steps + 1)
    scores = _variant_probs(
        model_fn, target.to(images.device), shape, variant, batch_size, progress
    )
    return torch.trapezoid(scores, x=counts.float() / (h * w), dim=1)


def average_drop_increase(
    model_fn: ModelFn,
    images: Tensor,
    saliency: Tensor,
    target: Tensor,
    batch_size: int = 64,
    progress: ProgressFn | None = None,
    *,
    upsample: str = "aligned",
    geometry: CellGeometry | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-image drop and increase in confidence (Chattopadhay et al., Grad-CAM++, WACV 2018).

    With ``s`` the map brought to the image as for :func:`deletion_insertion_auc` (in [0, 1],
    a flat map all zeros), the explanation is ``E = image * s`` in the model's normalised input
    space, so unexplained pixels fade to the mean colour. With ``Y`` the target class's softmax
    probability on the image and ``O`` on ``E``, the drop is ``max(0, Y - O) / Y * 100`` (0 when
    ``Y`` is 0) and the increase flag ``O > Y``. Average Drop is ``drop.mean()``, Increase in
    Confidence ``increase.float().mean() * 100``. Arguments as for
    :func:`deletion_insertion_auc`; ``progress`` counts ``2 N`` images.

    Returns:
        ``(drop, increase)``: ``[N]`` float32 percentages and ``[N]`` bool flags.

    Raises:
        ConfigError: ``batch_size`` below 1, or ``"aligned"`` without a geometry.
        InputError: the shapes or the model's output do not fit.
    """
    _check_inputs(images, target, batch_size)
    images = images.detach()
    sal = _heatmaps(saliency, images, upsample, geometry).to(images.dtype)[:, None]

    def variant(img: Tensor, explained: Tensor) -> Tensor:
        return images[img] * torch.where(explained[:, None, None, None].bool(), sal[img], 1.0)

    shape = (images.shape[0], 2)
    scores = _variant_probs(
        model_fn, target.to(images.device), shape, variant, batch_size, progress
    )
    y, o = scores[:, 0], scores[:, 1]
    drop = torch.where(
        y > 0, (y - o).clamp_min(0) / y.clamp_min(1e-30) * 100.0, torch.zeros_like(y)
    )
    return drop, o > y
