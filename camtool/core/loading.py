"""Opening what ``--model`` names as a :class:`~camtool.core.runner.Runner`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from camtool.core.checkpoint import LoadedModel, load_checkpoint
from camtool.core.device import resolve_device
from camtool.core.model import build_model, imagenet_class_names
from camtool.core.runner import Runner
from camtool.core.torch_runner import TorchRunner

if TYPE_CHECKING:
    from camtool.settings import Settings

__all__ = ["open_runner", "runner_from_settings"]


def open_runner(
    model_path: Path | None,
    device: torch.device,
    *,
    arch: str | None = None,
    img_size: int = 160,
    amp: bool = False,
) -> Runner:
    """Open what ``--model`` names: a checkpoint, an ``.onnx`` export, or (``None``) ImageNet's.

    Args:
        model_path: a camtool checkpoint, a plain torchvision state dict, an ONNX file, or
            ``None`` for torchvision's ImageNet ``arch`` with its 1000 class names.
        device: where to run.
        arch: the ImageNet model used when ``model_path`` is ``None`` (default ``resnet18``),
            and the arch of a plain state dict (``None``: recognised from its tensors).
        img_size: the input size for models that do not record one.
        amp: mixed precision on CUDA.
    """
    if model_path is not None and Path(model_path).suffix.lower() == ".onnx":
        from camtool.core.onnx_runner import OnnxRunner  # onnxruntime only when asked for

        return OnnxRunner(Path(model_path), device)
    if model_path is None:
        arch = arch or "resnet18"
        model = build_model(arch, 1000, pretrained=True)
        loaded = LoadedModel(model, imagenet_class_names(arch), img_size, source=f"ImageNet {arch}")
    else:
        loaded = load_checkpoint(Path(model_path), arch=arch, img_size=img_size)
    return TorchRunner(loaded, device, amp=amp)


def runner_from_settings(model_path: Path | None, settings: Settings) -> Runner:
    """:func:`open_runner` on the device, arch, image size and precision the settings name.

    ``model.arch`` names the ImageNet model, and the arch of a plain state dict only when it
    was set (by ``--arch``, the config file or the environment); otherwise that is recognised.
    """
    given = "arch" in settings.model.model_fields_set
    return open_runner(
        model_path,
        resolve_device(settings.training.device.value),
        arch=settings.model.arch if given else None,
        img_size=settings.dataset.img_size,
        amp=settings.training.amp,
    )
