"""ImageNet's per-channel normalisation, shared by training, checkpoints and runners (no torch
import)."""

from __future__ import annotations

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD"]

#: Per-channel mean of ImageNet's RGB images in [0, 1] (torchvision's models expect it).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: Per-channel standard deviation of ImageNet's RGB images in [0, 1].
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
