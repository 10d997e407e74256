"""A checkpoint's recorded input statistics are the ones its network uses, everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from camtool.core.checkpoint import load_checkpoint, save_checkpoint
from camtool.core.imagenet import IMAGENET_MEAN, IMAGENET_STD
from camtool.core.model import CAMNet

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def _saved_googlenet(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = CAMNet("googlenet", 3).eval()
    return save_checkpoint(tmp_path / "g.pt", model, class_names=["a", "b", "c"], img_size=64,
                           mean=MEAN, std=STD)  # fmt: skip


def test_googlenet_rescales_with_the_recorded_statistics(tmp_path: Path) -> None:
    loaded = load_checkpoint(_saved_googlenet(tmp_path))
    assert (loaded.mean, loaded.std) == (MEAN, STD)
    pixels = torch.rand(2, 3, 64, 64)
    x = (pixels - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    model = loaded.model.eval()
    seen: list[torch.Tensor] = []
    model.conv1.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    with torch.no_grad():
        model(x)  # the classifier's own forward (training, logits)
        model.forward_cams(x)  # the map path
    # What torchvision's GoogLeNet wants of pixels v: (v - 0.5) / 0.5, on both paths.
    for fed in seen:
        torch.testing.assert_close(fed, (pixels - 0.5) / 0.5, atol=1e-5, rtol=1e-5)
    assert len(seen) == 2


def test_a_new_model_rescales_with_imagenet_statistics() -> None:
    model = CAMNet("googlenet", 3).eval()
    x = torch.zeros(1, 3, 64, 64)  # the ImageNet mean, normalised
    step = model.feature_extractor()[0]
    expected = (torch.tensor(IMAGENET_MEAN) - 0.5) / 0.5
    assert np.allclose(step(x)[0, :, 0, 0].numpy(), expected.numpy(), atol=1e-6)
    assert np.allclose(torch.tensor(IMAGENET_STD).numpy(), step.std)
