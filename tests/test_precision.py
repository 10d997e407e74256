"""Maps are computed in float32 whatever precision the forward pass runs in (autocast)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from camtool.core.maps import heatmap
from camtool.core.model import CAMNet


@pytest.mark.parametrize("arch", ["resnet18", "squeezenet1_1"])
def test_the_map_under_autocast_is_the_fp32_contraction_of_the_features(arch: str) -> None:
    torch.manual_seed(0)
    model = CAMNet(arch, 5).eval()
    images = torch.randn(2, 3, 64, 80)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        feats = model.feature_map(images)  # bf16, as a CUDA/AMP forward pass computes them
        logits, cams = model.forward_cams(images)
    assert feats.dtype == torch.bfloat16
    assert cams.dtype == logits.dtype == torch.float32
    with torch.inference_mode():
        reference = model._contract(feats.float())  # the same features, contracted in fp32
    torch.testing.assert_close(cams, reference.cams, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, reference.logits, atol=1e-5, rtol=1e-5)
    for n in range(2):
        got = heatmap(cams[n, 1].numpy(), (64, 80), mode="conventional")
        want = heatmap(reference.cams[n, 1].numpy(), (64, 80), mode="conventional")
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_bf16_contraction_would_have_moved_the_map() -> None:
    # Why the rule exists: the same contraction in bf16 moves the normalised map visibly.
    torch.manual_seed(0)
    model = CAMNet("resnet18", 5).eval()
    with torch.inference_mode():
        feats = model.feature_map(torch.randn(1, 3, 64, 64))
        weight = model.cam_linear.weight
        fp32 = torch.einsum("nkhw,ck->nchw", feats, weight)[0, 0]
        bf16 = torch.einsum("nkhw,ck->nchw", feats.bfloat16(), weight.bfloat16())[0, 0]
    a = heatmap(fp32.numpy(), (64, 64), mode="conventional")
    b = heatmap(bf16.float().numpy(), (64, 64), mode="conventional")
    assert np.abs(a - b).max() > 1e-4
