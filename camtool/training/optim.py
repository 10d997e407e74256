"""Optimizers, learning-rate schedules and mixed precision for :mod:`camtool.training.loop`."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from camtool.choices import Optimizer, Scheduler
from camtool.settings import TrainingSettings

__all__ = [
    "PLATEAU_FACTOR",
    "PLATEAU_PATIENCE",
    "amp_dtype",
    "autocast",
    "build_optimizer",
    "build_scheduler",
    "precision_name",
    "step_scheduler",
    "to_device",
]

#: ``reduce_lr`` multiplies the learning rate by PLATEAU_FACTOR after PLATEAU_PATIENCE epochs
#: without a lower held-out loss.
PLATEAU_FACTOR = 0.1
PLATEAU_PATIENCE = 2


def build_optimizer(model: nn.Module, training: TrainingSettings) -> torch.optim.Optimizer:
    """``training.optimizer``: ``adam`` (L2 decay), ``adamw`` (decoupled decay) or ``sgd``."""
    params = [p for p in model.parameters() if p.requires_grad]
    lr, decay = training.learning_rate, training.weight_decay
    if training.optimizer == Optimizer.sgd:
        return torch.optim.SGD(params, lr=lr, momentum=training.momentum, weight_decay=decay)
    if training.optimizer == Optimizer.adamw:
        return torch.optim.AdamW(params, lr=lr, weight_decay=decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=decay)


def build_scheduler(optimizer: torch.optim.Optimizer, training: TrainingSettings) -> Any:
    """``training.scheduler``, stepped per epoch: ``cosine`` (to 0 over ``num_epochs``) or
    ``reduce_lr`` (on a held-out loss plateau)."""
    if training.scheduler == Scheduler.cosine:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=training.num_epochs)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE
    )


def step_scheduler(scheduler: Any, val_loss: float) -> None:
    """Step ``scheduler`` at the end of an epoch (the plateau schedule watches ``val_loss``)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(val_loss)
    else:
        scheduler.step()


def to_device(
    images: Tensor, labels: Tensor, device: torch.device, channels_last: bool
) -> tuple[Tensor, Tensor]:
    """Move a batch (``N x 3 x H x W`` float images, ``N`` int64 labels) to ``device``."""
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(device, non_blocking=True)


def autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision in ``dtype`` on ``device``; nothing for ``None`` (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 on CUDA where supported, else fp16; ``None`` (fp32) off CUDA or with amp off."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def precision_name(dtype: torch.dtype | None) -> str:
    """``bf16``, ``fp16`` or ``fp32``."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
