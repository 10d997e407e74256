"""Runners: a model behind one call, ``images -> (logits, cams)``, with what it knows about itself.

``camtool cam`` and ``camtool batch-cam`` work with any runner: a PyTorch checkpoint, torchvision's
ImageNet ResNet (no ``--model``), or an ONNX export run by onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

from camtool.core.checkpoint import IMAGENET_MEAN, IMAGENET_STD, LoadedModel, load_checkpoint
from camtool.core.device import resolve_device
from camtool.core.model import build_model, imagenet_class_names

if TYPE_CHECKING:
    from camtool.settings import Settings

__all__ = ["ModelInfo", "Runner", "TorchRunner", "open_runner", "runner_from_settings"]


@dataclass
class ModelInfo:
    """What a runner knows about its model."""

    class_names: list[str]
    img_size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    arch: str = "resnet18"
    source: str = ""
    settings: dict[str, Any] = field(default_factory=dict)


class Runner(Protocol):
    """A model behind one call; see the module docstring."""

    info: ModelInfo
    device: torch.device

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]: ...


class TorchRunner:
    """Runs a :class:`~camtool.core.model.CAMNet` in eval mode on a device.

    It uses channels-last memory on CUDA and on the CPU (measured ~30% faster for ResNet-18
    on CPU, see ``benchmarks/batch_cam.py``) and, with ``amp`` on CUDA, bf16/fp16 autocast.
    """

    def __init__(self, loaded: LoadedModel, device: torch.device, *, amp: bool = False) -> None:
        self.device = device
        self.model = loaded.model.eval().to(device)
        self.channels_last = device.type in ("cuda", "cpu")
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.amp_dtype: torch.dtype | None = None
        if amp and device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.info = ModelInfo(
            class_names=list(loaded.class_names),
            img_size=loaded.img_size,
            mean=tuple(loaded.mean),
            std=tuple(loaded.std),
            arch=loaded.arch,
            source=loaded.source,
            settings=dict(loaded.settings),
        )

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self.amp_dtype is not None:
            with torch.autocast(self.device.type, dtype=self.amp_dtype):
                logits, cams = self.model.forward_cams(images)
            return logits.float(), cams.float()
        logits, cams = self.model.forward_cams(images)
        return logits, cams


def open_runner(
    model_path: Path | None,
    device: torch.device,
    *,
    arch: str = "resnet18",
    img_size: int = 160,
    amp: bool = False,
) -> Runner:
    """Open what ``--model`` names: a checkpoint, an ``.onnx`` export, or (``None``) ImageNet's.

    Args:
        model_path: a camtool checkpoint, a plain ResNet state dict, an ONNX file, or ``None``
            for torchvision's ImageNet ``arch`` with its 1000 class names.
        device: where to run.
        arch: the ImageNet model used when ``model_path`` is ``None``.
        img_size: the input size for models that do not record one.
        amp: mixed precision on CUDA.
    """
    if model_path is not None and Path(model_path).suffix.lower() == ".onnx":
        from camtool.core.onnx_runner import OnnxRunner

        return OnnxRunner(Path(model_path), device)
    if model_path is None:
        model = build_model(arch, 1000, pretrained=True)
        loaded = LoadedModel(model, imagenet_class_names(arch), img_size, source=f"ImageNet {arch}")
    else:
        loaded = load_checkpoint(Path(model_path), img_size=img_size)
    return TorchRunner(loaded, device, amp=amp)


def runner_from_settings(model_path: Path | None, settings: Settings) -> Runner:
    """:func:`open_runner` on the device, arch, image size and precision the settings name."""
    return open_runner(
        model_path,
        resolve_device(settings.training.device.value),
        arch=settings.model.arch,
        img_size=settings.dataset.img_size,
        amp=settings.training.amp,
    )
