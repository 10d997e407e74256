"""What a training run is made of: its data loaders and its model, optimizer and schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from camtool.core.checkpoint import LoadedModel
from camtool.core.device import amp_dtype, autocast, place_model, to_device
from camtool.core.model import CAMNet, build_model
from camtool.data.datasets import make_loader
from camtool.data.splits import make_splits
from camtool.errors import CamtoolError, ConfigError
from camtool.settings import Settings
from camtool.training.distributed import DistContext
from camtool.training.optim import build_optimizer, build_scheduler
from camtool.training.reproducibility import EpochSampler, SeededItems, seed_everything

__all__ = ["TrainData", "TrainParts", "build_data", "build_parts"]


@dataclass
class TrainData:
    """The loaders of one process (its shard of the data under ``torchrun``)."""

    class_names: list[str]  #: in label order
    sampler: EpochSampler  #: the training order (set per epoch, can skip batches done)
    train_loader: DataLoader[Any]  #: augmented batches of ``(images, labels, skipped)``
    val_loader: DataLoader[Any]  #: held-out batches of the same shape
    train_images: int  #: all processes'
    val_images: int  #: all processes'


def build_data(
    settings: Settings, ctx: DistContext, device: torch.device, crop_scale: tuple[float, float]
) -> TrainData:
    """Split ``dataset.data_dir`` and build this process's loaders.

    Raises:
        ConfigError: ``model.num_classes`` disagrees with the dataset.
        CamtoolError: no usable data (from :func:`camtool.data.splits.make_splits`).
    """
    data, cfg = settings.dataset, settings.training
    splits = make_splits(
        data.data_dir,
        data.name.value,
        data.img_size,
        data.val_size,
        seed=cfg.seed,
        crop_scale=crop_scale,
        max_pixels=settings.cam.max_pixels,
    )
    class_names = list(splits.class_names)
    wanted = settings.model.num_classes
    if wanted is not None and wanted != len(class_names):
        raise ConfigError(
            f"model.num_classes is {wanted} but the dataset has {len(class_names)} "
            f"classes ({', '.join(class_names)}); leave num_classes unset"
        )
    pin = device.type == "cuda"
    inner: DistributedSampler[Any] = DistributedSampler(
        splits.train, ctx.world_size, ctx.rank, shuffle=True, seed=cfg.seed, drop_last=False
    )
    sampler = EpochSampler(inner, cfg.batch_size)
    train_loader = make_loader(
        SeededItems(splits.train, cfg.seed),
        cfg.batch_size,
        shuffle=False,
        workers=settings.runtime.workers,
        pin_memory=pin,
        sampler=sampler,  # type: ignore[arg-type]  # keys are (epoch, index)
        seed=cfg.seed,
    )
    val_count = len(splits.val)  # type: ignore[arg-type]
    shard = Subset(splits.val, range(ctx.rank, val_count, ctx.world_size))
    val_loader = make_loader(
        shard, cfg.batch_size, shuffle=False, workers=settings.runtime.workers, pin_memory=pin
    )
    train_count = len(splits.train)  # type: ignore[arg-type]
    return TrainData(class_names, sampler, train_loader, val_loader, train_count, val_count)


@dataclass
class TrainParts:
    """The model (on the device) and what updates it."""

    model: CAMNet
    net: nn.Module  #: what the loop calls: ``model``, or its ``DistributedDataParallel``
    amp_dtype: torch.dtype | None  #: the autocast dtype, ``None`` for fp32
    scaler: Any  #: the fp16 grad scaler, else ``None``
    optimizer: torch.optim.Optimizer
    scheduler: Any
    channels_last: bool  #: images go in NHWC memory order (CUDA)

    def step(
        self, images: Tensor, labels: Tensor, device: torch.device, *, stand_in: bool, img_size: int
    ) -> tuple[Tensor, Tensor]:
        """One optimisation step on a batch; returns its mean loss and its number of hits.

        An empty batch (every image unreadable) steps nothing, but under DDP (``stand_in``) joins
        the gradient all-reduce with a zero-weight zero image in eval mode (no BatchNorm update).
        """
        empty = labels.numel() == 0
        zero = torch.zeros((), device=device)
        if empty and not stand_in:
            return zero, zero
        if empty:
            images, labels = torch.zeros(1, 3, img_size, img_size), torch.zeros(1, dtype=torch.long)
            self.net.eval()
        images = to_device(images, device, channels_last=self.channels_last)
        labels = labels.to(device, non_blocking=True)
        try:
            with autocast(device, self.amp_dtype):
                logits = self.net(images)
                loss = F.cross_entropy(logits.float(), labels)
                loss = loss * 0.0 if empty else loss
        finally:
            if empty:
                self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return (zero, zero) if empty else (loss, (logits.argmax(dim=1) == labels).sum())


def build_parts(
    settings: Settings,
    ctx: DistContext,
    device: torch.device,
    class_names: list[str],
    loaded: LoadedModel | None,
) -> TrainParts:
    """A new model (seeded from ``training.seed``), or the one of ``loaded`` to resume.

    Raises:
        CamtoolError, ConfigError: ``loaded`` does not fit the data or the settings.
    """
    spec, cfg = settings.model, settings.training
    seed_everything(cfg.seed)
    if loaded is None:
        model = build_model(
            spec.arch,
            len(class_names),
            pretrained=spec.pretrained,
            output_stride=spec.output_stride,
        )
    else:
        model = loaded.model
        if loaded.class_names != class_names:
            raise CamtoolError(
                f"cannot resume: the checkpoint's classes ({', '.join(loaded.class_names)}) "
                f"differ from the dataset's ({', '.join(class_names)})"
            )
        stride = model.output_stride if spec.output_stride is None else spec.output_stride
        if (model.arch, model.output_stride) != (spec.arch, stride):
            raise ConfigError(
                f"cannot resume: the checkpoint holds a {model.arch} (output stride "
                f"{model.output_stride}), the settings ask for {spec.arch} ({stride})"
            )
    channels_last = device.type == "cuda"
    model = place_model(model, device, channels_last=channels_last)
    if channels_last:
        torch.backends.cudnn.benchmark = True
    net: nn.Module = model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    dtype = amp_dtype(device, settings.runtime.amp)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    return TrainParts(model, net, dtype, scaler, optimizer, scheduler, channels_last)
