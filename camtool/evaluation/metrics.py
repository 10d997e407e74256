"""Metrics for ``camtool eval``: classification and map faithfulness.

(Box localization lives in :mod:`camtool.evaluation.localization_metrics`.)

Classification
    :func:`topk_correct`, :func:`confusion_matrix`, :func:`per_class_prf`.

Faithfulness (no boxes needed), computed in batches with torch
    :func:`deletion_insertion_auc` (Petsiuk et al., RISE, BMVC 2018) and
    :func:`average_drop_increase` (Chattopadhay et al., Grad-CAM++, WACV 2018).

    ``images`` are what the model takes, i.e. already normalised with the dataset mean and
    standard deviation; a value of 0 there is the mean colour, which is the "removed" baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from camtool.core.maps import upsample_maps
from camtool.core.upsample import CellGeometry
from camtool.errors import ConfigError, InputError

__all__ = [
    "ModelFn",
    "ProgressFn",
    "average_drop_increase",
    "confusion_matrix",
    "deletion_insertion_auc",
    "per_class_prf",
    "topk_correct",
]

ModelFn = Callable[[Tensor], Tensor]
"""A function mapping a batch of images ``[B, 3, H, W]`` to logits ``[B, num_classes]``."""

ProgressFn = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each model call, counting images fed to the model."""


def _to_numpy(values: Tensor | np.ndarray | Sequence[int] | Sequence[bool]) -> np.ndarray:
    if isinstance(values, Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


# --------------------------------------------------------------------------- classification


def topk_correct(logits: Tensor, targets: Tensor, ks: Iterable[int] = (1, 5)) -> dict[int, int]:
    """Count the samples whose target is among the ``k`` highest logits.

    Args:
        logits: ``[N, C]`` scores.
        targets: ``[N]`` class indices.
        ks: the values of ``k``; a ``k`` above ``C`` counts every sample.

    Returns:
        ``{k: number of correct samples}`` for each ``k``.

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
    """Count (true class, predicted class) pairs.

    Args:
        preds: ``[N]`` predicted class indices.
        targets: ``[N]`` true class indices.
        n: number of classes.

    Returns:
        An ``[n, n]`` int64 matrix whose entry ``[t, p]`` counts samples of class ``t``
        predicted as ``p`` (rows are true classes, columns predictions).

    Raises:
        ConfigError: if ``n`` is below 1.
        InputError: if the lengths differ or an index is outside ``[0, n)``.
    """
    if n < 1:
        raise ConfigError(f"the number of classes must be at least 1, got {n}")
    p = _to_numpy(preds).astype(np.int64).ravel()
    t = _to_numpy(targets).astype(np.int64).ravel()
    if p.shape != t.shape:
        raise InputError(f"got {p.size} predictions for {t.size} targets")
    if p.size and (min(p.min(), t.min()) < 0 or max(p.max(), t.max()) >= n):
        raise InputError(f"class indices must lie in [0, {n})")
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n).astype(np.int64)


def per_class_prf(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 from a confusion matrix.

    Args:
        confusion: ``[n, n]`` counts, rows true classes and columns predictions
            (as returned by :func:`confusion_matrix`).

    Returns:
        ``(precision, recall, f1)``, three float64 arrays of length ``n``; a value is 0 where it
        is undefined (a class never predicted, never present, or with precision + recall = 0).

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


# --------------------------------------------------------------------------- faithfulness


def _check_faithfulness_inputs(
    images: Tensor, saliency: Tensor, target: Tensor, batch_size: int
) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    if images.ndim != 4:
        raise InputError(f"images must be [N, C, H, W], got {tuple(images.shape)}")
    n = images.shape[0]
    if saliency.ndim != 3 or saliency.shape[0] != n:
        raise InputError(f"saliency must be [{n}, h, w], got {tuple(saliency.shape)}")
    if target.ndim != 1 or target.shape[0] != n:
        raise InputError(f"target must be [{n}], got {tuple(target.shape)}")


def _upsample(
    saliency: Tensor, images: Tensor, upsample: str, geometry: CellGeometry | None
) -> Tensor:
    """Saliency as float ``[N, H, W]`` on the images' device, upsampled to them if needed
    (:func:`camtool.core.maps.upsample_maps`; the maps were computed from these images)."""
    sal = saliency.detach().to(device=images.device, dtype=torch.float32)
    size = (int(images.shape[-2]), int(images.shape[-1]))
    if tuple(sal.shape[-2:]) != size:
        sal = upsample_maps(sal, size, mode=upsample, geometry=geometry)
    if not torch.isfinite(sal).all():
        raise InputError("the saliency maps contain NaN or infinite values")
    return sal


def _minmax(sal: Tensor) -> Tensor:
    """Per-map min-max normalisation to [0, 1]; a constant map becomes all zeros."""
    flat = sal.reshape(sal.shape[0], -1)
    lo = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - lo
    out = torch.where(span > 0, (flat - lo) / span.clamp_min(1e-30), torch.zeros_like(flat))
    return out.reshape(sal.shape)


def _target_probs(model_fn: ModelFn, batch: Tensor, target: Tensor) -> Tensor:
    """Softmax probability of ``target`` for each image of ``batch``."""
    logits = model_fn(batch)
    if logits.ndim != 2 or logits.shape[0] != batch.shape[0]:
        raise InputError(
            f"the model must return logits [{batch.shape[0]}, C], got {tuple(logits.shape)}"
        )
    tgt = target.to(logits.device).long()
    if int(tgt.min()) < 0 or int(tgt.max()) >= logits.shape[1]:
        raise InputError(f"target classes must lie in [0, {logits.shape[1]})")
    probs = torch.softmax(logits.float(), dim=1)
    return probs.gather(1, tgt[:, None])[:, 0]


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

    Pixels are ranked by saliency (the map upsampled to the image size the ``upsample`` way,
    see :func:`camtool.core.maps.upsample_maps`; ties keep
    raster order). At step ``k`` of ``steps`` the ``round(k / steps * H * W)`` most salient pixels
    (all channels) are changed:

    * ``deletion`` starts from the image and sets them to the baseline, 0 in the model's
      normalised input space, i.e. the dataset's mean colour. Lower is better.
    * ``insertion`` starts from a Gaussian-blurred copy of the image (``insertion_start="blur"``,
      standard deviation ``blur_sigma`` pixels) or from the baseline (``"baseline"``) and puts
      the original pixels back. Higher is better.

    The curve is the softmax probability of the target class at each of the ``steps + 1`` points
    (both ends included); its area is taken with the trapezoid rule over the fraction of pixels
    changed, in [0, 1]. All ``N * (steps + 1)`` perturbed images are built and scored in chunks of
    ``batch_size`` without gradients.

    Args:
        model_fn: maps images ``[B, C, H, W]`` to logits ``[B, num_classes]``.
        images: ``[N, C, H, W]`` model inputs (normalised).
        saliency: ``[N, h, w]`` maps, any scale; resized to ``H x W`` if needed.
        target: ``[N]`` the class whose probability is tracked.
        steps: number of increments; at least 1.
        batch_size: most images per model call.
        mode: ``"deletion"`` or ``"insertion"``.
        insertion_start: what insertion starts from, ``"blur"`` or ``"baseline"``.
        blur_sigma: standard deviation of the insertion blur, in pixels; above 0.
        progress: optional ``progress(done, total)`` callback, counted in images.
        upsample: ``"aligned"`` (each cell at its receptive-field centre) or ``"conventional"``
            (bilinear, ``align_corners=False``), for maps smaller than the images.
        geometry: the model's cell geometry, needed by ``"aligned"`` for such maps.

    Returns:
        ``[N]`` float32 AUCs in [0, 1], on the images' device.

    Raises:
        ConfigError: if a setting is out of range.
        InputError: if the shapes or the model's output do not fit.
    """
    if mode not in ("deletion", "insertion"):
        raise ConfigError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    if insertion_start not in ("blur", "baseline"):
        raise ConfigError(f"insertion start must be 'blur' or 'baseline', got {insertion_start!r}")
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}")
    if not blur_sigma > 0:
        raise ConfigError(f"the blur sigma must be above 0, got {blur_sigma}")
    _check_faithfulness_inputs(images, saliency, target, batch_size)
    n, _, h, w = images.shape
    device = images.device
    if n == 0:
        return torch.zeros(0, device=device)
    hw = h * w
    images = images.detach()
    sal = _upsample(saliency, images, upsample, geometry).reshape(n, hw)
    order = torch.argsort(sal, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(hw, device=device).expand(n, hw).contiguous())
    counts = torch.tensor(
        [round(k * hw / steps) for k in range(steps + 1)], device=device, dtype=torch.long
    )
    fractions = counts.float() / hw
    target = target.to(device)
    per_image = steps + 1
    total = n * per_image
    scores = torch.empty(total, device=device, dtype=torch.float32)
    with torch.no_grad():
        for lo in range(0, total, batch_size):
            idx = torch.arange(lo, min(lo + batch_size, total), device=device)
            img_idx = idx // per_image
            step_idx = idx % per_image
            changed = (rank[img_idx] < counts[step_idx][:, None]).reshape(-1, 1, h, w)
            original = images[img_idx]
            if mode == "deletion":
                batch = torch.where(changed, torch.zeros_like(original), original)
            else:
                if insertion_start == "blur":
                    uniq, inverse = torch.unique(img_idx, return_inverse=True)
                    start = _gaussian_blur(images[uniq], blur_sigma)[inverse]
                else:
                    start = torch.zeros_like(original)
                batch = torch.where(changed, original, start)
            scores[lo : lo + idx.numel()] = _target_probs(model_fn, batch, target[img_idx]).to(
                device
            )
            if progress is not None:
                progress(lo + idx.numel(), total)
    return torch.trapezoid(scores.reshape(n, per_image), x=fractions, dim=1)


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

    The saliency map is upsampled to the image size (``upsample``, as for
    :func:`deletion_insertion_auc`) and min-max normalised to [0, 1]
    per image (a constant map becomes all zeros); the explanation map is
    ``E = image * saliency`` in the model's normalised input space, so unexplained pixels fade
    to the mean colour. With ``Y`` the target-class softmax probability on the image and ``O``
    on ``E``, the drop is ``max(0, Y - O) / Y * 100`` (0 when ``Y`` is 0) and the increase flag is
    ``O > Y``. Average Drop is ``drop.mean()``; Increase in Confidence is
    ``increase.float().mean() * 100``.

    Args:
        model_fn: maps images ``[B, C, H, W]`` to logits ``[B, num_classes]``.
        images: ``[N, C, H, W]`` model inputs (normalised).
        saliency: ``[N, h, w]`` maps, any scale.
        target: ``[N]`` the class scored.
        batch_size: most images per model call.
        progress: optional ``progress(done, total)`` callback, counted in images.
        upsample: as for :func:`deletion_insertion_auc`.
        geometry: as for :func:`deletion_insertion_auc`.

    Returns:
        ``(drop, increase)``: ``[N]`` float32 percentages and ``[N]`` bool flags.

    Raises:
        ConfigError: if ``batch_size`` is below 1.
        InputError: if the shapes or the model's output do not fit.
    """
    _check_faithfulness_inputs(images, saliency, target, batch_size)
    n = images.shape[0]
    device = images.device
    images = images.detach()
    sal = _minmax(_upsample(saliency, images, upsample, geometry))
    target = target.to(device)
    y = torch.empty(n, device=device, dtype=torch.float32)
    o = torch.empty(n, device=device, dtype=torch.float32)
    with torch.no_grad():
        for lo in range(0, n, batch_size):
            hi = min(lo + batch_size, n)
            batch = images[lo:hi]
            tgt = target[lo:hi]
            y[lo:hi] = _target_probs(model_fn, batch, tgt).to(device)
            explanation = batch * sal[lo:hi, None].to(batch.dtype)
            o[lo:hi] = _target_probs(model_fn, explanation, tgt).to(device)
            if progress is not None:
                progress(2 * hi, 2 * n)
    drop = torch.where(
        y > 0, (y - o).clamp_min(0) / y.clamp_min(1e-30) * 100.0, torch.zeros_like(y)
    )
    return drop, o > y
