"""What :func:`camtool.training.loop.train` reports: plan, progress, epoch metrics, result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "BatchProgress",
    "EpochMetrics",
    "SilentObserver",
    "TrainObserver",
    "TrainPlan",
    "TrainResult",
]


@dataclass
class EpochMetrics:
    """One finished epoch, as written to ``metrics.jsonl``; losses are mean cross-entropy."""

    epoch: int  #: 1-based
    train_loss: float
    train_acc: float  #: on augmented images, while the weights changed
    val_loss: float  #: on the held-out images
    val_acc: float
    lr: float  #: the learning rate used during the epoch
    seconds: float  #: wall time of the epoch (training and validation)
    images_per_s: float  #: training images per second (training phase, all processes)
    skipped: int  #: unreadable images met (training and validation)


@dataclass
class BatchProgress:
    """Running figures of the epoch in progress (this process's share of the data)."""

    epoch: int  #: 1-based
    batch: int  #: batches done in this epoch
    num_batches: int  #: batches in this epoch
    loss: float  #: mean training loss so far in this epoch
    acc: float  #: training accuracy so far in this epoch
    images_per_s: float  #: training images per second so far in this epoch


@dataclass
class TrainPlan:
    """What is about to run, told to :meth:`TrainObserver.on_start`."""

    num_epochs: int  #: the last epoch to run
    start_epoch: int  #: the first epoch to run (1 unless resuming)
    batches_per_epoch: int  #: training batches per epoch (per process)
    train_images: int  #: images used for fitting (all processes)
    val_images: int  #: held-out images used for model selection
    class_names: list[str]  #: in label order
    arch: str
    device: str
    precision: str  #: ``fp32``, ``bf16`` or ``fp16``
    world_size: int  #: processes training together
    checkpoint_dir: Path
    resumed_from: Path | None = None  #: the checkpoint resumed, if any
    #: the checkpoint resumed kept no optimizer moments (``best.pt``, ``epoch_NNN.pt``), so
    #: they start again from zero
    optimizer_restarted: bool = False


class TrainObserver(Protocol):
    """Progress callbacks of :func:`train`, on rank 0 only; raising ``KeyboardInterrupt`` in
    one is pressing Ctrl-C."""

    def on_start(self, plan: TrainPlan) -> None:
        """Training is about to start."""
        return None

    def on_epoch_start(self, epoch: int, num_batches: int, done_batches: int) -> None:
        """Epoch ``epoch`` starts; ``done_batches`` of ``num_batches`` were done before a resume."""
        return None

    def on_batch(self, progress: BatchProgress) -> None:
        """Called every ``training.log_every`` batches and after the epoch's last batch."""
        return None

    def on_validate(self, epoch: int) -> None:
        """Training batches of ``epoch`` are done; held-out evaluation starts."""
        return None

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        """An epoch is finished and its checkpoints are written."""
        return None


class SilentObserver(TrainObserver):
    """A :class:`TrainObserver` that ignores everything; subclass it to watch some events."""


@dataclass
class TrainResult:
    """What :func:`train` did (``best.pt``, ``last.pt``: ``None`` if no epoch finished)."""

    best_val_acc: float  #: the best held-out accuracy (``best.pt``)
    best_epoch: int  #: the epoch it was reached
    epochs_run: int  #: epochs finished in total (including those before a resume)
    num_epochs: int  #: the epoch budget
    stopped_early: bool  #: early stopping ended the run
    seconds: float  #: wall time of this call
    history: list[EpochMetrics]  #: every finished epoch
    checkpoint_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    numbered_checkpoints: list[Path]  #: the ``epoch_NNN.pt`` files
    metrics_file: Path  #: ``metrics.jsonl``
    curves_file: Path  #: ``curves.png``
    settings_file: Path  #: ``camtool-settings.toml``
    class_names: list[str]
    device: str
    precision: str  #: ``fp32``, ``bf16`` or ``fp16``
    world_size: int = 1  #: processes that trained together
    rank: int = 0  #: this process's rank; only rank 0 wrote files
    resumed_from: Path | None = None  #: the checkpoint resumed, if any
    #: ``{"path", "error"}`` of every unreadable image this process met (each once)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def is_main(self) -> bool:
        """This process is rank 0 (the one that wrote files)."""
        return self.rank == 0

    def to_dict(self) -> dict[str, Any]:
        """The ``camtool train --json`` document (paths as strings)."""
        return {
            "best_val_acc": self.best_val_acc,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "num_epochs": self.num_epochs,
            "stopped_early": self.stopped_early,
            "seconds": round(self.seconds, 3),
            "checkpoint_dir": str(self.checkpoint_dir),
            "checkpoints": {
                "best": _str_or_none(self.best_checkpoint),
                "last": _str_or_none(self.last_checkpoint),
                "numbered": [str(p) for p in self.numbered_checkpoints],
            },
            "metrics_file": str(self.metrics_file),
            "curves_file": str(self.curves_file),
            "settings_file": str(self.settings_file),
            "class_names": list(self.class_names),
            "device": self.device,
            "precision": self.precision,
            "world_size": self.world_size,
            "resumed_from": _str_or_none(self.resumed_from),
            "history": [asdict(m) for m in self.history],
            "skipped": list(self.skipped),
        }


def _str_or_none(path: Path | None) -> str | None:
    return None if path is None else str(path)
