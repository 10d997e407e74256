"""Metrics for ``camtool eval``: classification, box localization and map faithfulness.

Classification
    :func:`topk_correct`, :func:`confusion_matrix`, :func:`per_class_prf`.

Localization (ground-truth boxes known)
    :class:`LocalizationAccumulator` is fed batches of ground-truth-class maps and reports

    * the CAM paper protocol (Zhou et al. 2016, following ILSVRC): box around the largest
      8-connected region above 20% of the map's maximum
      (:func:`camtool.core.localize.box_from_map`);
      **GT-known localization** counts an image when that box has IoU >= 0.5 with any of its
      ground-truth boxes, **top-1 localization** additionally requires the top-1 class to be right
      (when it is right, the predicted class's map *is* the ground-truth class's map, so the
      correctness flag is all that is needed besides the ground-truth-class map);
    * **MaxBoxAccV2** (Choe et al., CVPR 2020): for each CAM threshold of a sweep, an image counts
      at IoU level ``delta`` when the best of the boxes around *all* connected regions of the
      thresholded map has IoU >= ``delta`` with any ground-truth box; box accuracy is the fraction
      of such images, it is maximised over thresholds for each ``delta``, and the maxima are
      averaged over ``delta`` in {0.3, 0.5, 0.7}.

    Thresholds apply to min-max normalised maps, a pixel being foreground when its normalised
    value is strictly greater than the threshold (see :mod:`camtool.core.localize`). Unlike the
    reference code, maps are not quantised to 8 bits first. Accuracies are fractions in [0, 1].

Faithfulness (no boxes needed), computed in batches with torch
    :func:`deletion_insertion_auc` (Petsiuk et al., RISE, BMVC 2018) and
    :func:`average_drop_increase` (Chattopadhay et al., Grad-CAM++, WACV 2018).

    ``images`` are what the model takes, i.e. already normalised with the dataset mean and
    standard deviation; a value of 0 there is the mean colour, which is the "removed" baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, TypedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from camtool.core.localize import BoxXYXY, all_boxes_from_map_thresholds, box_from_map
from camtool.errors import CamtoolError, ConfigError, InputError

__all__ = [
    "DEFAULT_CAM_THRESHOLDS",
    "DEFAULT_IOU_THRESHOLDS",
    "LocalizationAccumulator",
    "LocalizationResults",
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

DEFAULT_CAM_THRESHOLDS: np.ndarray = np.arange(100) / 100.0
"""The MaxBoxAccV2 sweep: 0.00, 0.01, ..., 0.99."""

DEFAULT_IOU_THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7)
"""The IoU levels MaxBoxAccV2 averages over."""


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


# --------------------------------------------------------------------------- localization


def _best_iou(boxes: Sequence[BoxXYXY], gt: np.ndarray) -> float:
    """Largest IoU between any of ``boxes`` and any row ``(x0, y0, x1, y1)`` of ``gt``."""
    if not boxes:
        return 0.0
    b = np.asarray([bx.as_tuple() for bx in boxes], dtype=np.float64)[:, None, :]
    g = gt[None, :, :]
    iw = np.clip(np.minimum(b[..., 2], g[..., 2]) - np.maximum(b[..., 0], g[..., 0]), 0, None)
    ih = np.clip(np.minimum(b[..., 3], g[..., 3]) - np.maximum(b[..., 1], g[..., 1]), 0, None)
    inter = iw * ih
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    area_g = np.clip(g[..., 2] - g[..., 0], 0, None) * np.clip(g[..., 3] - g[..., 1], 0, None)
    union = area_b + area_g - inter
    ious = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return float(ious.max())


class LocalizationResults(TypedDict):
    """What :meth:`LocalizationAccumulator.compute` returns; accuracies are fractions in [0, 1].

    Attributes:
        top1_loc: CAM protocol box with IoU >= 0.5 and the top-1 class right.
        gt_known_loc: CAM protocol box of the ground-truth class map with IoU >= 0.5.
        maxboxacc_v2: mean over the IoU levels of ``maxboxacc_by_iou``.
        maxboxacc_by_iou: ``{delta: box accuracy at the best CAM threshold}``.
        best_threshold_by_iou: ``{delta: the lowest CAM threshold reaching that maximum}``.
        n_images: number of images accumulated.
    """

    top1_loc: float
    gt_known_loc: float
    maxboxacc_v2: float
    maxboxacc_by_iou: dict[float, float]
    best_threshold_by_iou: dict[float, float]
    n_images: int


class LocalizationAccumulator:
    """Accumulates box-localization results over batches; see the module docstring.

    Typical use::

        acc = LocalizationAccumulator()
        for batch in loader:
            acc.update(gt_class_maps, logits.argmax(1) == labels, boxes)
        results = acc.compute()

    Args:
        thresholds: the CAM thresholds of the MaxBoxAccV2 sweep, in [0, 1].
        iou_thresholds: the IoU levels MaxBoxAccV2 averages over.
        cam_threshold: the relative threshold of the CAM paper protocol.
        loc_iou: the IoU needed by top-1 and GT-known localization.

    Raises:
        ConfigError: if a threshold is outside [0, 1] or a list is empty.
    """

    def __init__(
        self,
        thresholds: Sequence[float] | np.ndarray = DEFAULT_CAM_THRESHOLDS,
        iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
        cam_threshold: float = 0.2,
        loc_iou: float = 0.5,
    ) -> None:
        thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        ious = tuple(float(d) for d in iou_thresholds)
        for name, values in (("CAM thresholds", thr), ("IoU thresholds", np.asarray(ious))):
            if values.size == 0 or not np.isfinite(values).all():
                raise ConfigError(f"{name} must be a non-empty list of numbers")
            if (values < 0).any() or (values > 1).any():
                raise ConfigError(f"{name} must lie between 0 and 1")
        if not 0.0 <= cam_threshold <= 1.0 or not 0.0 <= loc_iou <= 1.0:
            raise ConfigError("the CAM threshold and the localization IoU must lie in [0, 1]")
        self.thresholds = thr
        self.iou_thresholds = ious
        self.cam_threshold = float(cam_threshold)
        self.loc_iou = float(loc_iou)
        self._correct = np.zeros((len(ious), thr.size), dtype=np.int64)
        self._gt_known = 0
        self._top1 = 0
        self._n = 0

    def update(
        self,
        heatmaps: np.ndarray | Sequence[np.ndarray],
        pred_correct: Tensor | np.ndarray | Sequence[bool],
        gt_boxes: Sequence[Sequence[BoxXYXY]],
    ) -> None:
        """Add a batch of images.

        Args:
            heatmaps: ``[N, H, W]`` maps of each image's ground-truth class at the resolution
                the boxes are given in (usually the input image); a sequence of 2-D maps of
                different sizes is accepted as well.
            pred_correct: ``[N]`` flags, true where the top-1 predicted class is the true class.
            gt_boxes: for each image, its ground-truth boxes (at least one), in the map's pixel
                coordinates.

        Raises:
            InputError: if the lengths differ, an image has no box or a map is not 2-D/finite.
        """
        correct = _to_numpy(pred_correct).astype(bool).reshape(-1)
        n = len(heatmaps)
        if correct.size != n or len(gt_boxes) != n:
            raise InputError(
                f"got {n} maps, {correct.size} correctness flags and {len(gt_boxes)} box lists"
            )
        for heatmap, ok, boxes in zip(heatmaps, correct, gt_boxes, strict=True):
            if len(boxes) == 0:
                raise InputError("every image needs at least one ground-truth box")
            gt = np.asarray([b.as_tuple() for b in boxes], dtype=np.float64)
            known = _best_iou([box_from_map(heatmap, self.cam_threshold)], gt) >= self.loc_iou
            self._gt_known += int(known)
            self._top1 += int(known and bool(ok))
            sweep = all_boxes_from_map_thresholds(heatmap, self.thresholds)
            best = np.asarray([_best_iou(bxs, gt) for bxs in sweep])
            for i, delta in enumerate(self.iou_thresholds):
                self._correct[i] += best >= delta
            self._n += 1

    @property
    def n_images(self) -> int:
        """Number of images added so far."""
        return self._n

    def box_accuracy_curves(self) -> dict[float, np.ndarray]:
        """Box accuracy at each CAM threshold, for each IoU level (fractions in [0, 1]).

        Raises:
            CamtoolError: if no image was added.
        """
        if self._n == 0:
            raise CamtoolError("no images were given to the localization metrics")
        return {d: self._correct[i] / self._n for i, d in enumerate(self.iou_thresholds)}

    def compute(self) -> LocalizationResults:
        """The metrics over every image added so far.

        Returns:
            A dict with ``top1_loc`` and ``gt_known_loc`` (fractions), ``maxboxacc_v2`` (mean of
            the per-IoU maxima), ``maxboxacc_by_iou`` (``{delta: max accuracy}``),
            ``best_threshold_by_iou`` (``{delta: the lowest CAM threshold reaching it}``) and
            ``n_images``.

        Raises:
            CamtoolError: if no image was added.
        """
        curves = self.box_accuracy_curves()
        by_iou = {d: float(c.max()) for d, c in curves.items()}
        best_thr = {d: float(self.thresholds[int(np.argmax(c))]) for d, c in curves.items()}
        return LocalizationResults(
            top1_loc=self._top1 / self._n,
            gt_known_loc=self._gt_known / self._n,
            maxboxacc_v2=float(np.mean(list(by_iou.values()))),
            maxboxacc_by_iou=by_iou,
            best_threshold_by_iou=best_thr,
            n_images=self._n,
        )


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


def _upsample(saliency: Tensor, images: Tensor) -> Tensor:
    """Saliency as float ``[N, H, W]`` on the images' device, bilinearly resized if needed."""
    sal = saliency.detach().to(device=images.device, dtype=torch.float32)
    size = tuple(images.shape[-2:])
    if tuple(sal.shape[-2:]) != size:
        sal = F.interpolate(sal[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
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
) -> Tensor:
    """Deletion or insertion AUC of saliency maps (Petsiuk et al., RISE, BMVC 2018).

    Pixels are ranked by saliency (the map bilinearly upsampled to the image size; ties keep
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
    sal = _upsample(saliency, images).reshape(n, hw)
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
) -> tuple[Tensor, Tensor]:
    """Per-image drop and increase in confidence (Chattopadhay et al., Grad-CAM++, WACV 2018).

    The saliency map is bilinearly upsampled to the image size and min-max normalised to [0, 1]
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
    sal = _minmax(_upsample(saliency, images))
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
