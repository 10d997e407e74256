"""Opening what ``--model`` names as a Runner (an ``.onnx`` file without importing torch)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from camtool.core.runner import Runner
from camtool.paths import require_file

__all__ = ["is_onnx", "open_runner"]


def is_onnx(model_path: Path | None) -> bool:
    """Whether ``--model`` names an ONNX export (by its ``.onnx`` suffix)."""
    return model_path is not None and Path(model_path).suffix.lower() == ".onnx"


def open_runner(
    model_path: Path | None,
    device: Any = "auto",
    *,
    arch: str | None = None,
    img_size: int = 160,
    amp: bool = False,
    few_images: bool = False,
    imagenet_classes: Sequence[str] | None = None,
) -> Runner:
    """Open what ``--model`` names: a checkpoint, an ``.onnx`` export, or (``None``) ImageNet's.

    Args:
        model_path: a camtool checkpoint, a plain torchvision state dict, an ONNX file, or
            ``None`` for torchvision's ImageNet ``arch`` (default ``resnet18``).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps`` (or a ``torch.device``).
        arch: also a plain state dict's arch (``None``: recognised from its tensors).
        img_size: the input size for models that do not record one.
        few_images: open fast rather than run fast (ONNX: basic graph optimisations only).
        imagenet_classes: with no ``model_path``, keep only these Imagenette WordNet ids, in
            class-index order (:mod:`camtool.core.zeroshot`).

    Raises:
        CamtoolError: the model cannot be read, the device is not available, or
            ``imagenet_classes`` holds an id that is not Imagenette's.
    """
    if is_onnx(model_path):
        from camtool.core.onnx_runner import OnnxRunner  # onnxruntime, and no torch

        return OnnxRunner(Path(str(model_path)), str(device), quick_start=few_images)
    if model_path is not None:
        require_file(Path(model_path), "checkpoint")
    from camtool.core.checkpoint import LoadedModel, load_checkpoint
    from camtool.core.device import resolve_device
    from camtool.core.model import build_model, imagenet_class_names
    from camtool.core.torch_runner import TorchRunner
    from camtool.core.zeroshot import imagenet_subset

    torch_device = resolve_device(str(device))
    if model_path is not None:
        loaded = load_checkpoint(Path(model_path), arch=arch, img_size=img_size)
    elif imagenet_classes is not None:
        loaded = imagenet_subset(arch or "resnet18", imagenet_classes, img_size)
    else:
        arch = arch or "resnet18"
        model = build_model(arch, 1000, pretrained=True)
        loaded = LoadedModel(model, imagenet_class_names(arch), img_size, source=f"ImageNet {arch}")
    return TorchRunner(loaded, torch_device, amp=amp)
