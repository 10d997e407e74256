"""Running a :class:`~camtool.core.model.CAMNet` with PyTorch, behind the
:class:`~camtool.core.runner.Runner` protocol."""

from __future__ import annotations

import torch
from torch import Tensor

from camtool.core.checkpoint import LoadedModel
from camtool.core.runner import ModelInfo

__all__ = ["TorchRunner"]


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
            geometry=loaded.geometry,
            output_stride=int(loaded.model.output_stride),
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
