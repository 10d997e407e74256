"""Classification and map-faithfulness metrics of ``camtool eval`` on torch batches."""

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

ModelFn = Callable[[Tensor], Tensor]  # images [B, C, H, W] -> logits [B, num_classes]
ProgressFn = Callable[[int, int], None]  # progress(done, total) in images fed to the model


def to_numpy(values: Tensor | np.ndarray | Sequence[int] | Sequence[bool]) -> np.ndarray:
    """``values`` as a NumPy array (a tensor is detached and copied from its device)."""
    if isinstance(values, Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def topk_correct(logits: Tensor, targets: Tensor, ks: Iterable[int] = (1, 5)) -> dict[int, int]:
    """``{k: samples whose target is among the k highest}`` of ``[N, C]`` logits and ``[N]``
    targets; a ``k`` above ``C`` counts every sample.

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
    """The ``[n, n]`` int64 confusion matrix of ``[N]`` class indices (``[true, predicted]``).

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
    """Per-class float64 ``[n]`` ``(precision, recall, f1)`` of a :func:`confusion_matrix`,
    0 where undefined.

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
    """``[N, V]`` target probabilities of ``variant(image_idx, variant_idx)``."""
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
    """Separable Gaussian blur, truncated at 2 sigma, edges replicated."""
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

    Pixels are ranked by the map (brought to the image by :func:`camtool.core.maps.heatmap`
    with ``upsample`` and ``geometry``; ties in raster order). At step ``k`` the
    ``round(k / steps * H * W)`` most salient pixels change: ``deletion`` sets them to 0, the
    normalised input's mean colour (lower is better); ``insertion`` puts them back into the
    image blurred (Gaussian of ``blur_sigma`` pixels) or 0 (``"baseline"``) (higher is better).
    The AUC is the trapezoid rule of the target's softmax probability over the fraction changed,
    ``steps + 1`` points.

    ``images``: ``[N, C, H, W]`` normalised inputs; ``saliency``: ``[N, h, w]`` maps (at most the
    images' size); ``target``: ``[N]`` classes; ``model_fn`` sees at most ``batch_size`` images.

    Returns:
        ``[N]`` float32 AUCs in [0, 1], on the images' device.

    Raises:
        ConfigError: a setting out of range, or ``"aligned"`` without a geometry.
        InputError: the shapes or the model's output do not fit.
    """
    _check_inputs(images, target, batch_size)
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}")
    if mode not in ("deletion", "insertion"):
        raise ConfigError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    if insertion_start not in ("blur", "baseline"):
        raise ConfigError(f"insertion start must be 'blur' or 'baseline', got {insertion_start!r}")
    if not blur_sigma > 0:
        raise ConfigError(f"the blur sigma must be above 0, got {blur_sigma}")
    x = images.detach()
    if mode == "deletion":
        start, end = x, torch.zeros_like(x)
    elif insertion_start == "blur":
        start, end = _gaussian_blur(x, blur_sigma), x
    else:
        start, end = torch.zeros_like(x), x
    n, _, h, w = images.shape
    sal = _heatmaps(saliency, images, upsample, geometry).reshape(n, h * w)
    order = torch.argsort(sal, dim=1, descending=True, stable=True)
    rank = torch.argsort(order, dim=1)  # the inverse permutation: each pixel's place in order
    counts = torch.tensor([round(k * h * w / steps) for k in range(steps + 1)], device=rank.device)

    def variant(img: Tensor, step: Tensor) -> Tensor:
        changed = (rank[img] < counts[step][:, None]).reshape(-1, 1, h, w)
        return torch.where(changed, end[img], start[img])

    tgt = target.to(images.device)
    scores = _variant_probs(model_fn, tgt, (n, steps + 1), variant, batch_size, progress)
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

    The explanation is ``E = image * s``, ``s`` the map in [0, 1] at the image's size. With ``Y``
    the target's softmax probability on the image and ``O`` on ``E``, the drop is
    ``max(0, Y - O) / Y * 100`` (0 when ``Y`` is 0) and the increase ``O > Y``; Average Drop is
    ``drop.mean()``, Increase in Confidence ``increase.float().mean() * 100``. Arguments as for
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

    tgt = target.to(images.device)
    scores = _variant_probs(model_fn, tgt, (images.shape[0], 2), variant, batch_size, progress)
    y, o = scores[:, 0], scores[:, 1]
    drop = torch.where(
        y > 0, (y - o).clamp_min(0) / y.clamp_min(1e-30) * 100.0, torch.zeros_like(y)
    )
    return drop, o > y
