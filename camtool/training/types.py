"""What :func:`camtool.training.loop.train` reports: plans, progress, epoch metrics and the
result."""

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
    """One finished epoch, as written to ``metrics.jsonl``.

    Attributes:
        epoch: 1-based epoch number.
        train_loss: mean cross-entropy over the epoch's training images.
        train_acc: training accuracy (on augmented images, while the weights changed).
        val_loss: mean cross-entropy on the held-out images.
        val_acc: accuracy on the held-out images.
        lr: learning rate used during the epoch.
        seconds: wall time of the epoch (training and validation).
        images_per_s: training images per second (training phase only, all processes).
        skipped: unreadable images met during the epoch (training and validation).
    """

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    seconds: float
    images_per_s: float
    skipped: int


@dataclass
class BatchProgress:
    """Running figures of the epoch in progress (this process's share of the data).

    Attributes:
        epoch: 1-based epoch number.
        batch: batches done in this epoch.
        num_batches: batches in this epoch.
        loss: mean training loss so far in this epoch.
        acc: training accuracy so far in this epoch.
        images_per_s: training images per second so far in this epoch.
    """

    epoch: int
    batch: int
    num_batches: int
    loss: float
    acc: float
    images_per_s: float


@dataclass
class TrainPlan:
    """What is about to run, told to :meth:`TrainObserver.on_start`.

    Attributes:
        num_epochs: the last epoch to run.
        start_epoch: the first epoch to run (1 unless resuming).
        batches_per_epoch: training batches per epoch (per process).
        train_images: images used for fitting (all processes).
        val_images: held-out images used for model selection.
        class_names: the classes, in label order.
        arch: the network.
        device: where it runs.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        world_size: processes training together.
        checkpoint_dir: where files go.
        resumed_from: the checkpoint resumed, if any.
        optimizer_restarted: the checkpoint resumed kept no optimizer moments (``best.pt``,
            ``epoch_NNN.pt``), so they start again from zero.
    """

    num_epochs: int
    start_epoch: int
    batches_per_epoch: int
    train_images: int
    val_images: int
    class_names: list[str]
    arch: str
    device: str
    precision: str
    world_size: int
    checkpoint_dir: Path
    resumed_from: Path | None = None
    optimizer_restarted: bool = False


class TrainObserver(Protocol):
    """Progress callbacks of :func:`train` (see :class:`SilentObserver` for a base to extend).

    Only the main process (rank 0) calls them. Raising :class:`KeyboardInterrupt` from one is
    the same as pressing Ctrl-C.
    """

    def on_start(self, plan: TrainPlan) -> None:
        """Training is about to start."""

    def on_epoch_start(self, epoch: int, num_batches: int, done_batches: int) -> None:
        """Epoch ``epoch`` starts; ``done_batches`` of ``num_batches`` were done before a resume."""

    def on_batch(self, progress: BatchProgress) -> None:
        """Called every ``training.log_every`` batches and after the epoch's last batch."""

    def on_validate(self, epoch: int) -> None:
        """Training batches of ``epoch`` are done; held-out evaluation starts."""

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        """An epoch is finished and its checkpoints are written."""


class SilentObserver:
    """A :class:`TrainObserver` that ignores everything; subclass it to watch some events."""

    def on_start(self, plan: TrainPlan) -> None:
        """Ignored."""

    def on_epoch_start(self, epoch: int, num_batches: int, done_batches: int) -> None:
        """Ignored."""

    def on_batch(self, progress: BatchProgress) -> None:
        """Ignored."""

    def on_validate(self, epoch: int) -> None:
        """Ignored."""

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        """Ignored."""


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes:
        best_val_acc: the best held-out accuracy (``best.pt``).
        best_epoch: the epoch it was reached.
        epochs_run: epochs finished in total (including those before a resume).
        num_epochs: the epoch budget.
        stopped_early: early stopping ended the run.
        seconds: wall time of this call.
        history: every finished epoch.
        checkpoint_dir: where the files are.
        best_checkpoint: ``best.pt`` (``None`` if no epoch finished).
        last_checkpoint: ``last.pt`` (``None`` if no epoch finished).
        numbered_checkpoints: the ``epoch_NNN.pt`` files.
        metrics_file: ``metrics.jsonl``.
        curves_file: ``curves.png``.
        settings_file: ``camtool-settings.toml``.
        class_names: the classes.
        device: where it ran.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        world_size: processes that trained together.
        rank: this process's rank; only rank 0 wrote files.
        resumed_from: the checkpoint resumed, if any.
        skipped: ``{"path", "error"}`` of every unreadable image this process met (each once).
    """

    best_val_acc: float
    best_epoch: int
    epochs_run: int
    num_epochs: int
    stopped_early: bool
    seconds: float
    history: list[EpochMetrics]
    checkpoint_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    numbered_checkpoints: list[Path]
    metrics_file: Path
    curves_file: Path
    settings_file: Path
    class_names: list[str]
    device: str
    precision: str
    world_size: int = 1
    rank: int = 0
    resumed_from: Path | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def is_main(self) -> bool:
        """This process is rank 0 (the one that reports and writes)."""
        return self.rank == 0

    def to_dict(self) -> dict[str, Any]:
        """The ``camtool train --json`` document (paths as strings; the last epoch is the
        last entry of ``history``)."""
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
