"""Input conventions shared by the settings, training, checkpoints and runners (no torch import):
ImageNet's per-channel normalisation and the range of image sides camtool accepts."""

from __future__ import annotations

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IMG_SIZE_RANGE"]

#: Per-channel mean of ImageNet's RGB images in [0, 1] (torchvision's models expect it).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: Per-channel standard deviation of ImageNet's RGB images in [0, 1].
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: The smallest and largest image side (pixels) a model input may be resized to: the range of
#: ``dataset.img_size`` and of what a checkpoint or export records.
IMG_SIZE_RANGE: tuple[int, int] = (16, 4096)
