"""Optimizers and learning-rate schedules for :mod:`camtool.training.loop`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from camtool.choices import Optimizer, Scheduler
from camtool.settings import TrainingSettings

__all__ = [
    "PLATEAU_FACTOR",
    "PLATEAU_PATIENCE",
    "build_optimizer",
    "build_scheduler",
    "step_scheduler",
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
