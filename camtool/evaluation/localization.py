"""``camtool eval``'s localization pass on uncropped inputs (as ``camtool cam`` feeds them), maps
upsampled to the original image so boxes compare in its pixels; batches group images by size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from camtool.core.maps import heatmap
from camtool.core.runner import ModelInfo, Runner
from camtool.data.boxes import GroundTruth, GtBox, Warn, fit_boxes
from camtool.data.datasets import SkippedImage
from camtool.data.images import ResizeGeometry, input_geometry, load_image
from camtool.errors import CamtoolError, ConfigError, InputError
from camtool.evaluation.data import EvalLoop, EvalProgress, refuse_out_of_memory, skipped_fields
from camtool.evaluation.localization_metrics import LocalizationAccumulator
from camtool.explain.files import model_input
from camtool.process import worker_init

__all__ = ["LocItem", "run_localization"]

_NO_CROP_NOTE = (
    "no crop: shorter side resized to img_size, each side rounded to a multiple of the output "
    "stride, maps upsampled to the original image (cells placed as the upsample field says), "
    "boxes compared in original pixels"
)


@dataclass(frozen=True)
class LocItem:
    """An image of the split with ground-truth boxes, and its class index."""

    path: Path
    label: int
    boxes: list[GtBox]


_Uncropped = tuple[Tensor, int, ResizeGeometry]


class _NoCrop(Dataset[_Uncropped | SkippedImage]):
    """Yields ``(uncropped input (3, h, w), item index, geometry)`` or a SkippedImage."""

    def __init__(self, items: Sequence[LocItem], info: ModelInfo, max_pixels: int | None) -> None:
        self.items = list(items)
        self.info = info
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> _Uncropped | SkippedImage:
        try:
            image = load_image(self.items[i].path, self.max_pixels)
        except InputError as exc:
            return SkippedImage.from_error(self.items[i].path, exc)
        info = self.info
        geometry = input_geometry(
            image.width, image.height, info.img_size, stride=info.output_stride
        )
        return torch.from_numpy(model_input(image, info)), i, geometry


def _collate_list(batch: Sequence[Any]) -> tuple[list[Any], list[SkippedImage]]:
    kept = [item for item in batch if not isinstance(item, SkippedImage)]
    return kept, [item for item in batch if isinstance(item, SkippedImage)]


def _size_batches(items: Sequence[LocItem], info: ModelInfo, batch_size: int) -> list[list[int]]:
    """Indices grouped by their uncropped input's size (the header's, upright), in batches."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, item in enumerate(items):
        try:
            with Image.open(item.path) as image:
                width, height = image.size
                turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        except Exception:  # unreadable files are counted when they are loaded
            groups.setdefault((0, 0), []).append(i)
            continue
        size = (height, width) if turned else (width, height)
        key = input_geometry(*size, info.img_size, stride=info.output_stride).input_size
        groups.setdefault(key, []).append(i)
    return [
        members[lo : lo + batch_size]
        for members in groups.values()
        for lo in range(0, len(members), batch_size)
    ]


def _score_group(
    runner: Runner,
    items: Sequence[LocItem],
    group: list[_Uncropped],
    acc: LocalizationAccumulator,
    warn: Warn | None,
    upsample: str,
) -> None:
    chosen = [items[i] for _, i, _ in group]
    labels = torch.tensor([item.label for item in chosen])
    logits, cams = runner(torch.stack([t for t, _, _ in group]))
    right = logits.argmax(dim=1).cpu() == labels
    gt_maps = cams[torch.arange(len(group)), labels.to(cams.device)].float().cpu()
    input_hw = (int(group[0][0].shape[-2]), int(group[0][0].shape[-1]))
    geometry = runner.info.geometry
    heats = [
        heatmap(
            gt_maps[j], (g.height, g.width), mode=upsample, geometry=geometry, input_hw=input_hw
        )
        for j, (_, _, g) in enumerate(group)
    ]
    boxes = [
        fit_boxes(item.boxes, item.path, g.width, g.height, warn)
        for item, (_, _, g) in zip(chosen, group, strict=True)
    ]
    acc.update(heats, right, boxes)


@refuse_out_of_memory
def run_localization(
    runner: Runner,
    samples: Sequence[tuple[Path, int]],
    gt: GroundTruth,
    *,
    batch_size: int,
    workers: int,
    max_pixels: int | None,
    progress: EvalProgress | None,
    warn: Warn | None = None,
    upsample: str = "aligned",
    protocol: str = "camtool",
) -> dict[str, Any]:
    """Localization of the ``(path, label)`` samples with boxes, fed uncropped, JSON-ready.

    ``max_pixels`` refuses larger images unread; ``progress("localization", done, total)`` follows
    each batch; ``warn`` is told of each box clipped; ``upsample`` as
    :func:`camtool.core.maps.heatmap` takes it; ``protocol`` the MaxBoxAccV2 one.

    Returns:
        :meth:`LocalizationAccumulator.compute`'s results (``*_by_iou`` keyed ``"0.3"`` ...),
        the unreadable images, ``n_without_boxes``, the box source and the settings used.

    Raises:
        ConfigError: ``batch_size`` below 1, an unknown protocol, or ``"aligned"`` without a
            cell geometry.
        CamtoolError: no image with boxes could be read, or the GPU ran out of memory.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    matched = gt.match([path for path, _ in samples])
    items = [
        LocItem(path, label, boxes)
        for (path, label), boxes in zip(samples, matched, strict=True)
        if boxes is not None
    ]
    info = runner.info
    loader = DataLoader(
        _NoCrop(items, info, max_pixels),
        batch_sampler=_size_batches(items, info, batch_size),
        num_workers=workers,
        collate_fn=_collate_list,
        worker_init_fn=worker_init(),
    )
    acc = LocalizationAccumulator(protocol=protocol)
    loop = EvalLoop(loader, "localization", len(items), progress)
    for (kept,) in loop:
        by_shape: dict[tuple[int, ...], list[_Uncropped]] = {}
        for entry in kept:  # a header can disagree with the pixels: group by the real shape
            by_shape.setdefault(tuple(entry[0].shape), []).append(entry)
        for group in by_shape.values():
            _score_group(runner, items, group, acc, warn, upsample)
    if acc.n_images == 0:
        raise CamtoolError("none of the images with boxes could be read")
    res = acc.compute()
    return {
        **res,
        "maxboxacc_by_iou": {f"{d:g}": v for d, v in res["maxboxacc_by_iou"].items()},
        "best_threshold_by_iou": {f"{d:g}": v for d, v in res["best_threshold_by_iou"].items()},
        **skipped_fields(loop.skipped),
        "n_without_boxes": len(matched) - len(items),
        "boxes": str(gt.source),
        "cam_threshold": acc.cam_threshold,
        "iou": acc.loc_iou,
        "protocol": acc.protocol,
        "upsample": upsample,
        "preprocessing": _NO_CROP_NOTE,
    }
