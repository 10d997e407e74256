"""Running a :class:`~camtool.core.model.CAMNet` with PyTorch, as a Runner."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from camtool.core.checkpoint import LoadedModel
from camtool.core.device import amp_dtype, autocast, place_model, to_device
from camtool.core.runner import ModelInfo

__all__ = ["TorchRunner"]


class TorchRunner:
    """Runs a :class:`~camtool.core.model.CAMNet` in eval mode on ``device``.

    Channels-last memory on CUDA and the CPU (~30% faster for ResNet-18 on CPU,
    ``benchmarks/batch_cam.py``); with ``amp`` on CUDA, bf16/fp16 autocast.
    """

    def __init__(
        self, loaded: LoadedModel, device: torch.device | str, *, amp: bool = False
    ) -> None:
        self.torch_device = torch.device(device)
        self.device = str(self.torch_device)
        self.channels_last = self.torch_device.type in ("cuda", "cpu")
        self.model = place_model(
            loaded.model.eval(), self.torch_device, channels_last=self.channels_last
        )
        self.amp_dtype = amp_dtype(self.torch_device, amp)
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

    def __call__(self, images: Any) -> tuple[Any, Any]:
        """``logits (N, C)``, ``cams (N, C, h, w)`` of normalised ``(N, 3, H, W)`` images: float32
        NumPy arrays for a NumPy input, tensors on the model's device for a tensor input."""
        if isinstance(images, np.ndarray):
            logits, cams = self._forward(torch.from_numpy(np.asarray(images, np.float32)))
            return logits.float().cpu().numpy(), cams.float().cpu().numpy()
        return self._forward(images)

    @torch.inference_mode()
    def _forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = to_device(images, self.torch_device, channels_last=self.channels_last)
        with autocast(self.torch_device, self.amp_dtype):
            return self.model.forward_cams(images)  # float32 still: the maps are made outside
