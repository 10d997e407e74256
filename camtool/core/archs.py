"""The backbones camtool can build: torchvision's ResNets (light module, no torch import)."""

from __future__ import annotations

__all__ = ["RESNET_ARCHS"]

RESNET_ARCHS: tuple[str, ...] = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
)
