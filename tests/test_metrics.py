"""Tests for camtool.evaluation.metrics and localization_metrics: classification, localization
and faithfulness metrics."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import Tensor

from camtool.core.localize import BoxXYXY
from camtool.core.upsample import resnet_geometry
from camtool.errors import CamtoolError, ConfigError, InputError
from camtool.evaluation.localization_metrics import DEFAULT_CAM_THRESHOLDS, LocalizationAccumulator
from camtool.evaluation.metrics import (
    average_drop_increase,
    confusion_matrix,
    deletion_insertion_auc,
    per_class_prf,
    topk_correct,
)

EPS = 1e-6


def _blob_map(h: int, w: int, *blobs: tuple[BoxXYXY, float], base: float = 0.0) -> np.ndarray:
    heat = np.full((h, w), base)
    for box, value in blobs:
        heat[box.y0 : box.y1, box.x0 : box.x1] = value
    return heat


def _prob_logits(p: Tensor) -> Tensor:
    """Two-class logits whose softmax puts exactly ``p`` on class 0."""
    p = p.clamp(EPS, 1 - EPS)
    return torch.stack([torch.log(p), torch.log1p(-p)], dim=1)


# --------------------------------------------------------------------------- classification


def test_topk_correct_counts() -> None:
    logits = torch.tensor(
        [
            [0.9, 0.05, 0.03, 0.02],  # top order 0,1,2,3
            [0.1, 0.2, 0.3, 0.4],  # top order 3,2,1,0
            [0.3, 0.4, 0.2, 0.1],  # top order 1,0,2,3
        ]
    )
    targets = torch.tensor([0, 1, 0])
    assert topk_correct(logits, targets, ks=(1, 2, 3)) == {1: 1, 2: 2, 3: 3}
    # k above the number of classes counts every sample.
    assert topk_correct(logits, targets, ks=(1, 5)) == {1: 1, 5: 3}
    with pytest.raises(ConfigError):
        topk_correct(logits, targets, ks=(0,))
    with pytest.raises(InputError):
        topk_correct(logits, targets[:2])


def test_confusion_matrix_and_prf_on_a_tiny_case() -> None:
    preds = torch.tensor([0, 0, 1, 2, 2, 2])
    targets = np.array([0, 1, 1, 2, 2, 0])
    cm = confusion_matrix(preds, targets, 4)
    np.testing.assert_array_equal(cm, [[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        precision, recall, f1 = per_class_prf(cm)
    np.testing.assert_allclose(precision, [0.5, 1.0, 2 / 3, 0.0])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0, 0.0])
    np.testing.assert_allclose(f1, [0.5, 2 / 3, 0.8, 0.0])


def test_confusion_matrix_rejects_bad_input() -> None:
    with pytest.raises(InputError):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(InputError):
        confusion_matrix([0, 1], [0], 3)
    with pytest.raises(InputError):
        per_class_prf(np.zeros((2, 3)))


# --------------------------------------------------------------------------- localization

GT = BoxXYXY(2, 2, 6, 6)
ELSEWHERE = BoxXYXY(7, 7, 10, 10)


def test_perfect_map_scores_one_and_a_map_elsewhere_scores_zero() -> None:
    perfect = LocalizationAccumulator()
    perfect.update(_blob_map(10, 10, (GT, 1.0))[None], [True], [[GT]])
    res = perfect.compute()
    assert res["maxboxacc_v2"] == 1.0
    assert res["maxboxacc_by_iou"] == {0.3: 1.0, 0.5: 1.0, 0.7: 1.0}
    assert res["gt_known_loc"] == 1.0
    assert res["top1_loc"] == 1.0
    assert res["n_images"] == 1

    wrong = LocalizationAccumulator()
    wrong.update(_blob_map(10, 10, (ELSEWHERE, 1.0))[None], [True], [[GT]])
    res = wrong.compute()
    assert res["maxboxacc_v2"] == 0.0
    assert res["gt_known_loc"] == 0.0
    assert res["top1_loc"] == 0.0


def test_the_accumulator_reports_the_centre_box_on_the_images_it_saw() -> None:
    from camtool.evaluation.localization_metrics import centre_box_baseline

    acc = LocalizationAccumulator()
    wide = BoxXYXY(4, 1, 16, 9)  # on a 10x20 (h x w) map: the centre box of its own size
    acc.update(
        [_blob_map(10, 20, (wide, 1.0)), _blob_map(10, 10, (GT, 1.0))], [1, 0], [[wide], [GT]]
    )
    expected = centre_box_baseline(
        [np.array([wide.as_tuple()], dtype=float), np.array([GT.as_tuple()], dtype=float)],
        [(10, 20), (10, 10)],
    )
    assert acc.compute()["centre_box_baseline"] == expected
    # Mean relative size 0.5 wide, 0.6 high: (5, 2, 15, 8) on the wide map, IoU 60/96 = 0.625;
    # (2, 2, 8, 8) on the square one (7.5 rounds to 8), IoU 16/36 = 0.44.
    assert expected == {"gt_known_loc": 0.5, "maxboxacc_v2": pytest.approx((1 + 0.5 + 0) / 3)}


def test_maxboxacc_v2_hand_built_three_images() -> None:
    thresholds = [0.0, 0.25, 0.5, 0.75]
    # Image 1: full strength on the left half of GT, half strength on the right half.
    # IoU per threshold: 1, 1, 0.5, 0.5.
    half = _blob_map(10, 10, (BoxXYXY(2, 2, 4, 6), 1.0), (BoxXYXY(4, 2, 6, 6), 0.5))
    # Image 2: GT on a 0.4 background covering the image. IoU: 0.16, 0.16, 1, 1.
    noisy = _blob_map(10, 10, (GT, 1.0), base=0.4)
    noisy[0, 0] = 0.0  # the minimum, so that the background normalises to 0.4
    # Image 3: elsewhere. IoU 0 everywhere.
    off = _blob_map(10, 10, (ELSEWHERE, 1.0))
    acc = LocalizationAccumulator(thresholds=thresholds)
    acc.update(np.stack([half, noisy]), np.array([True, False]), [[GT], [GT]])
    acc.update([off], torch.tensor([True]), [[GT]])
    res = acc.compute()
    by_iou = res["maxboxacc_by_iou"]
    assert by_iou == pytest.approx({0.3: 2 / 3, 0.5: 2 / 3, 0.7: 1 / 3})
    assert res["maxboxacc_v2"] == pytest.approx(5 / 9)
    assert res["best_threshold_by_iou"] == {0.3: 0.5, 0.5: 0.5, 0.7: 0.0}
    curves = acc.box_accuracy_curves()
    np.testing.assert_allclose(curves[0.3], [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(curves[0.7], [1 / 3, 1 / 3, 1 / 3, 1 / 3])
    # CAM protocol at 20%: image 1 box = GT (IoU 1), image 2 box = whole image (IoU 0.16).
    assert res["gt_known_loc"] == pytest.approx(1 / 3)
    assert res["top1_loc"] == pytest.approx(1 / 3)
    assert res["n_images"] == 3


def test_maxboxacc_v2_considers_every_component_but_cam_protocol_only_the_largest() -> None:
    small_on_gt = _blob_map(12, 12, (GT, 1.0), (BoxXYXY(7, 0, 12, 12), 1.0))
    acc = LocalizationAccumulator()
    acc.update(small_on_gt[None], [True], [[GT]])
    res = acc.compute()
    assert res["maxboxacc_v2"] == 1.0
    assert res["gt_known_loc"] == 0.0


def test_top1_and_gt_known_on_a_small_case() -> None:
    on = _blob_map(10, 10, (GT, 1.0))
    off = _blob_map(10, 10, (ELSEWHERE, 1.0))
    # The fifth image has two GT boxes and its map points at the second one.
    acc = LocalizationAccumulator()
    acc.update(
        np.stack([on, on, off, off, off]),
        [True, False, True, False, True],
        [[GT], [GT], [GT], [GT], [GT, ELSEWHERE]],
    )
    res = acc.compute()
    assert res["gt_known_loc"] == pytest.approx(3 / 5)
    assert res["top1_loc"] == pytest.approx(2 / 5)


def test_gt_known_needs_iou_of_one_half() -> None:
    # Box (2,2,6,4) against GT (2,2,6,6): IoU exactly 0.5 counts; (2,2,5,4) gives 6/16 and does not.
    acc = LocalizationAccumulator()
    acc.update(
        np.stack(
            [
                _blob_map(10, 10, (BoxXYXY(2, 2, 6, 4), 1.0)),
                _blob_map(10, 10, (BoxXYXY(2, 2, 5, 4), 1.0)),
            ]
        ),
        [True, True],
        [[GT], [GT]],
    )
    assert acc.compute()["gt_known_loc"] == pytest.approx(0.5)


def test_accumulator_errors() -> None:
    acc = LocalizationAccumulator()
    with pytest.raises(CamtoolError):
        acc.compute()
    with pytest.raises(InputError):
        acc.update(np.zeros((2, 4, 4)), [True], [[GT], [GT]])
    with pytest.raises(InputError):
        acc.update(np.zeros((1, 4, 4)), [True], [[]])
    with pytest.raises(ConfigError):
        LocalizationAccumulator(thresholds=[0.5, 1.2])
    assert DEFAULT_CAM_THRESHOLDS.size == 100
    assert DEFAULT_CAM_THRESHOLDS[7] == 0.07


# --------------------------------------------------------------------------- faithfulness

H = W = 8
REGION = torch.zeros(H, W, dtype=torch.bool)
REGION[:2, :] = True  # the first 16 of 64 pixels in raster order


class RegionModel:
    """p(class 0) = mean over REGION of channel 0; counts its calls and batch sizes."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def __call__(self, x: Tensor) -> Tensor:
        self.batch_sizes.append(x.shape[0])
        return _prob_logits(x[:, 0][:, REGION].mean(dim=1))


def _mean_model(x: Tensor) -> Tensor:
    return _prob_logits(x.mean(dim=(1, 2, 3)))


def test_deletion_auc_closed_form_for_a_linear_score() -> None:
    # The score is the fraction of pixels not yet deleted, linear in the fraction deleted, so
    # the trapezoid rule gives exactly 1/2 whatever the order.
    images = torch.ones(3, 3, H, W)
    saliency = torch.rand(3, H, W, generator=torch.Generator().manual_seed(0))
    for steps in (16, 5):
        auc = deletion_insertion_auc(
            _mean_model, images, saliency, torch.zeros(3, dtype=torch.long), steps=steps
        )
        np.testing.assert_allclose(auc.numpy(), [0.5] * 3, atol=1e-5)
    ins = deletion_insertion_auc(
        _mean_model,
        images,
        saliency,
        torch.zeros(3, dtype=torch.long),
        mode="insertion",
        insertion_start="baseline",
    )
    np.testing.assert_allclose(ins.numpy(), [0.5] * 3, atol=1e-5)


def test_saliency_on_the_region_deletes_faster_and_inserts_faster() -> None:
    images = torch.ones(3, 1, H, W)
    good = REGION.float()
    inverse = 1.0 - good
    random = torch.rand(H, W, generator=torch.Generator().manual_seed(1))
    saliency = torch.stack([good, inverse, random])
    target = torch.zeros(3, dtype=torch.long)
    model = RegionModel()
    deletion = deletion_insertion_auc(model, images, saliency, target, steps=4)
    # steps=4 -> 16 pixels per step. Good: scores 1,0,0,0,0; inverse: 1,1,1,1,0.
    assert deletion[0].item() == pytest.approx(0.125, abs=1e-4)
    assert deletion[1].item() == pytest.approx(0.875, abs=1e-4)
    assert deletion[0] < deletion[2] < deletion[1]
    insertion = deletion_insertion_auc(
        model, images, saliency, target, steps=4, mode="insertion", insertion_start="baseline"
    )
    assert insertion[0].item() == pytest.approx(0.875, abs=1e-4)
    assert insertion[1].item() == pytest.approx(0.125, abs=1e-4)
    assert insertion[0] > insertion[2] > insertion[1]


def test_insertion_starts_from_a_blurred_image_by_default() -> None:
    # Blurring a constant image leaves it unchanged, so the score is 1 from the first step.
    images = torch.ones(1, 1, H, W)
    saliency = REGION.float()[None]
    target = torch.zeros(1, dtype=torch.long)
    blurred = deletion_insertion_auc(RegionModel(), images, saliency, target, mode="insertion")
    assert blurred.item() == pytest.approx(1.0, abs=1e-4)
    # A non-constant image: the blurred start keeps part of the signal, the baseline none.
    stripes = torch.zeros(1, 1, H, W)
    stripes[..., :, ::2] = 1.0
    inverse = 1.0 - saliency
    from_blur = deletion_insertion_auc(
        RegionModel(), stripes, inverse, target, steps=4, mode="insertion"
    )
    from_base = deletion_insertion_auc(
        RegionModel(),
        stripes,
        inverse,
        target,
        steps=4,
        mode="insertion",
        insertion_start="baseline",
    )
    assert from_blur.item() > from_base.item() + 0.1


def test_deletion_is_batched_in_chunks_and_reports_progress() -> None:
    gen = torch.Generator().manual_seed(2)
    images = torch.rand(5, 1, H, W, generator=gen)
    saliency = torch.rand(5, H, W, generator=gen)
    target = torch.zeros(5, dtype=torch.long)
    big = deletion_insertion_auc(RegionModel(), images, saliency, target, steps=6, batch_size=1000)
    model = RegionModel()
    seen: list[tuple[int, int]] = []
    small = deletion_insertion_auc(
        model,
        images,
        saliency,
        target,
        steps=6,
        batch_size=8,
        progress=lambda done, total: seen.append((done, total)),
    )
    np.testing.assert_allclose(small.numpy(), big.numpy(), rtol=1e-6)
    total = 5 * 7
    assert sum(model.batch_sizes) == total
    assert max(model.batch_sizes) == 8
    assert len(model.batch_sizes) == math.ceil(total / 8)
    assert seen[-1] == (total, total)


def test_low_resolution_saliency_is_upsampled() -> None:
    images = torch.ones(1, 1, H, W)
    target = torch.zeros(1, dtype=torch.long)
    low = torch.tensor(
        [
            [[1.0, 1.0], [0.0, 0.0]],
        ]
    )  # top half salient, like REGION's rows
    full = deletion_insertion_auc(RegionModel(), images, REGION.float()[None], target, steps=4)
    up = deletion_insertion_auc(
        RegionModel(), images, low, target, steps=4, upsample="conventional"
    )
    assert up.item() == pytest.approx(full.item(), abs=1e-4)
    # Aligned, the two cells sit on rows 0 and H // 2 (stride H // 2, offset 0): same ranking.
    aligned = deletion_insertion_auc(
        RegionModel(), images, low, target, steps=4, geometry=resnet_geometry(H // 2)
    )
    assert aligned.item() == pytest.approx(full.item(), abs=1e-4)
    with pytest.raises(ConfigError, match="conventional"):
        deletion_insertion_auc(RegionModel(), images, low, target, steps=4)


def test_deletion_insertion_rejects_bad_settings() -> None:
    images = torch.ones(2, 1, H, W)
    sal = torch.ones(2, H, W)
    target = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ConfigError):
        deletion_insertion_auc(_mean_model, images, sal, target, mode="both")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        deletion_insertion_auc(_mean_model, images, sal, target, steps=0)
    with pytest.raises(InputError):
        deletion_insertion_auc(_mean_model, images, sal[:1], target)
    with pytest.raises(InputError):
        deletion_insertion_auc(_mean_model, images, sal, torch.tensor([0, 5]))


def _drop_model(x: Tensor) -> Tensor:
    """p = 0.2 + 0.3 * mean(x on REGION) + 0.3 * (1 - mean(x off REGION)): 0.5 on all-ones."""
    inside = x[:, 0][:, REGION].mean(dim=1)
    outside = x[:, 0][:, ~REGION].mean(dim=1)
    return _prob_logits(0.2 + 0.3 * inside + 0.3 * (1.0 - outside))


def test_average_drop_and_increase_on_a_toy_model() -> None:
    images = torch.ones(3, 1, H, W)
    on_region = REGION.float()
    saliency = torch.stack([on_region, 1.0 - on_region, 0.5 + 0.5 * on_region])
    target = torch.zeros(3, dtype=torch.long)
    drop, increase = average_drop_increase(_drop_model, images, saliency, target, batch_size=2)
    # Y = 0.5 for every image.
    # 1: E keeps REGION only -> O = 0.8: no drop, an increase.
    # 2: E keeps everything but REGION -> O = 0.2: drop (0.5 - 0.2) / 0.5 = 60%.
    # 3: same as 1 once min-max normalised.
    np.testing.assert_allclose(drop.numpy(), [0.0, 60.0, 0.0], atol=1e-3)
    assert increase.tolist() == [True, False, True]
    assert increase.dtype == torch.bool


def test_average_drop_of_a_constant_map_removes_everything() -> None:
    images = torch.ones(1, 1, H, W)
    drop, increase = average_drop_increase(
        _drop_model,
        images,
        torch.full((1, 2, 2), 3.0),
        torch.zeros(1, dtype=torch.long),
        upsample="conventional",
    )
    # E = 0 -> O = 0.2 + 0 + 0.3 = 0.5 = Y: no drop, no increase.
    assert drop.item() == pytest.approx(0.0, abs=1e-3)
    assert increase.tolist() == [False]


def test_a_flat_map_is_flat_for_every_faithfulness_metric() -> None:
    # Upsampling a constant 5x5 map leaves float rounding (~5e-7) in it; the heatmap calls
    # that flat, and so must the metrics: nothing is kept (E = 0) and pixels are deleted in
    # raster order, which here is REGION first.
    images = torch.ones(1, 1, H, W)
    flat = torch.full((1, 5, 5), 3.7)
    target = torch.zeros(1, dtype=torch.long)
    drop, increase = average_drop_increase(
        _drop_model, images, flat, target, upsample="conventional"
    )
    assert drop.item() == pytest.approx(0.0, abs=1e-3) and increase.tolist() == [False]
    auc = deletion_insertion_auc(
        RegionModel(), images, flat, target, steps=4, upsample="conventional"
    )
    assert auc.item() == pytest.approx(0.125, abs=1e-4)


def test_centre_box_baseline_on_a_hand_worked_case() -> None:
    from camtool.evaluation.localization_metrics import centre_box_baseline

    # Two 10x10 images with 6x6 boxes: the fixed box is 6x6 at the centre, (2, 2, 8, 8).
    # Image 1's box is that box (IoU 1); image 2's, (1, 1, 7, 7), overlaps it 5x5 = 25 of a
    # union of 36 + 36 - 25 = 47: IoU 0.532, over 0.3 and 0.5 but not 0.7.
    boxes = [np.array([[2.0, 2, 8, 8]]), np.array([[1.0, 1, 7, 7]])]
    scores = centre_box_baseline(boxes, [(10, 10), (10, 10)])
    assert scores["gt_known_loc"] == 1.0
    assert scores["maxboxacc_v2"] == pytest.approx((1 + 1 + 0.5) / 3)
    # Sizes are relative: the same boxes on a 20x20 image double the fixed box, (4, 4, 16, 16);
    # a box (0, 0, 12, 12) there meets it 8x8 = 64 of 144 + 144 - 64 = 224: IoU 0.29 < 0.3.
    scores = centre_box_baseline([np.array([[0.0, 0, 12, 12]])], [(20, 20)])
    assert scores == {"gt_known_loc": 0.0, "maxboxacc_v2": 0.0}
    # Several boxes in an image: all set the mean size (4.5 px: the fixed box is (3, 3, 7, 7)),
    # the best IoU counts: (2, 2, 8, 8) holds it, 16 of 36 = 0.44; (0, 0, 3, 3) misses it.
    two = [np.array([[0.0, 0, 3, 3], [2.0, 2, 8, 8]])]
    scores = centre_box_baseline(two, [(10, 10)])
    assert scores["gt_known_loc"] == 0.0
    assert scores["maxboxacc_v2"] == pytest.approx(1 / 3)
    with pytest.raises(ConfigError):
        centre_box_baseline([], [])


@pytest.mark.parametrize(
    ("boxes", "sizes", "words"),
    [
        ([np.zeros((0, 4))], [(10, 10)], "an \\(n >= 1, 4\\) array"),
        ([np.array([1.0, 1, 5, 5])], [(10, 10)], "an \\(n >= 1, 4\\) array"),
        ([np.array([[1.0, 1, 5, 5]])], [(0, 0)], "no pixels"),
        ([np.array([[1.0, 1, 1, 5]])], [(10, 10)], "x0 < x1"),  # zero width
        ([np.array([[5.0, 1, 1, 5]])], [(10, 10)], "x0 < x1"),  # inverted
        ([np.array([[np.nan, 1, 5, 5]])], [(10, 10)], "finite"),
        ([np.array([[1.0, 1, 5, 5]])], [(10, 10), (10, 10)], "one size per image"),
    ],
)
def test_centre_box_baseline_refuses_degenerate_input(
    boxes: list[np.ndarray], sizes: list[tuple[int, int]], words: str
) -> None:
    from camtool.evaluation.localization_metrics import centre_box_baseline

    with pytest.raises(ConfigError, match=words):
        centre_box_baseline(boxes, sizes)
    if words == "finite":  # and no IoU levels at all
        with pytest.raises(ConfigError, match="IoU level"):
            centre_box_baseline([np.array([[1.0, 1, 5, 5]])], [(10, 10)], iou_thresholds=[])
