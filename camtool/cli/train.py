"""``camtool train``: fine-tune a CAM network, with live progress on stderr."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from camtool.choices import DeviceName, Optimizer, Scheduler
from camtool.cli._app import CamtoolCommand, app
from camtool.cli._common import (
    ConfigOpt,
    DeviceOpt,
    JsonOpt,
    QuietOpt,
    device_value,
    resolve_settings,
)
from camtool.cli._output import err, out, print_json, report_skipped

__all__ = ["LiveProgress", "train_cmd"]

if TYPE_CHECKING:
    from camtool.training.types import BatchProgress, EpochMetrics, TrainPlan, TrainResult


def _enum_value(choice: Any) -> str | None:
    return None if choice is None else str(choice.value)


@app.command(
    "train",
    cls=CamtoolCommand,
    short_help="Fine-tune a GAP + linear-head classifier: checkpoints, curves.",
)
def train_cmd(
    config: Path | None = ConfigOpt,
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        metavar="DIR",
        help="Dataset folder with train/ and val/ [default: data/].",
        readable=False,
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", metavar="N", help="Maximum epochs [default: 50]."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", metavar="N", help="Images per step [default: 64]."
    ),
    lr: float | None = typer.Option(
        None, "--lr", metavar="LR", help="Initial learning rate [default: 0.001]."
    ),
    optimizer: Optimizer | None = typer.Option(
        None, "--optimizer", metavar="NAME", help="adam, adamw or sgd [default: adam]."
    ),
    scheduler: Scheduler | None = typer.Option(
        None, "--scheduler", metavar="NAME", help="reduce_lr or cosine [default: reduce_lr]."
    ),
    val_size: float | None = typer.Option(
        None,
        "--val-size",
        metavar="N|F",
        help="Images held out of train/ for validation: a count, or a fraction 0 < F < 1 "
        "[default: 0.1].",
    ),
    img_size: int | None = typer.Option(
        None, "--img-size", metavar="PIXELS", help="Side the images are resized to [default: 160]."
    ),
    arch: str | None = typer.Option(
        None,
        "--arch",
        metavar="ARCH",
        help="Network: resnet18, densenet121, efficientnet_b0, mobilenet_v2, regnet_y_400mf ... "
        "or timm:<name> [default: resnet18].",
        show_default=False,
    ),
    device: DeviceName | None = DeviceOpt,
    pretrained: bool | None = typer.Option(
        None,
        "--pretrained/--no-pretrained",
        help="Start from ImageNet weights (needs them cached or a network) [default: yes].",
    ),
    workers: int | None = typer.Option(
        None, "--workers", metavar="N", help="Data loader worker processes [default: 2]."
    ),
    seed: int | None = typer.Option(
        None, "--seed", metavar="N", help="Seed of init, order, augmentation [default: 0]."
    ),
    checkpoint_dir: Path | None = typer.Option(
        None,
        "--checkpoint-dir",
        metavar="DIR",
        help="Where checkpoints and logs go [default: checkpoints/].",
        readable=False,
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the run in --checkpoint-dir from its last.pt (also after Ctrl-C), "
        "with the settings it was started with; flags given now override them "
        "(e.g. --epochs 30 to train longer).",
    ),
    resume_from: Path | None = typer.Option(
        None,
        "--resume-from",
        metavar="FILE",
        help="Like --resume, but from this checkpoint (e.g. best.pt or epoch_004.pt; these "
        "keep no optimizer moments, so the optimizer starts them afresh).",
        readable=False,
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Start afresh in a --checkpoint-dir that holds an earlier run, deleting its "
        "checkpoints and logs (by default camtool refuses).",
    ),
    json_out: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Train a classifier whose maps show where it looks: a CNN, GAP and one linear layer.

    Writes last.pt, best.pt, epoch_NNN.pt, metrics.jsonl, curves.png and the settings into the
    checkpoint folder (locked while the run lasts). Ctrl-C or SIGTERM saves last.pt (exit 130 or
    143); --resume continues exactly where it stopped. Runs distributed under torchrun
    --nproc_per_node N (only rank 0 prints and writes).

    \b
    Examples:
      camtool train --config configs/imagenette.toml
      camtool train --data-dir data/imagenette2-160 --epochs 10 --lr 3e-4
      camtool train --resume
    """
    settings = resolve_settings(
        config,
        {
            "model": {"pretrained": pretrained, "arch": arch},
            "dataset": {"data_dir": data_dir, "img_size": img_size, "val_size": val_size},
            "training": {
                "num_epochs": epochs,
                "batch_size": batch_size,
                "learning_rate": lr,
                "optimizer": _enum_value(optimizer),
                "scheduler": _enum_value(scheduler),
                "device": device_value(device),
                "workers": workers,
                "seed": seed,
                "checkpoint_dir": checkpoint_dir,
            },
        },
    )
    from camtool.training.loop import train

    live = LiveProgress(quiet)
    try:
        result = train(
            settings, resume=resume_from or resume or None, observer=live, overwrite=overwrite
        )
    finally:
        live.close()
    if not result.is_main:
        return
    report_skipped(result.skipped)
    if json_out:
        print_json(result.to_dict())
    else:
        _summary(result)


class LiveProgress:
    """Training progress on stderr (see :mod:`camtool.cli._progress`).

    On a terminal: an epoch bar and a batch bar with loss, accuracy, images/s and ETA. Elsewhere
    (logs): a plain line every ``training.log_every`` batches. Both: one line per epoch. With
    ``quiet``: nothing.
    """

    def __init__(self, quiet: bool = False) -> None:
        from camtool.cli._progress import progress_mode

        self.mode = progress_mode(quiet)
        self._progress: Any = None
        self._epochs: Any = None
        self._batches: Any = None
        self._num_epochs = 0

    def say(self, text: str) -> None:
        """One line on stderr (through the live bars), unless quiet."""
        from camtool.cli._progress import ProgressMode, plain_line

        if self.mode is ProgressMode.off:
            return
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            plain_line(text)

    def on_start(self, plan: TrainPlan) -> None:
        from camtool.cli._progress import ProgressMode

        parts = [
            f"training {plan.arch} on {plan.train_images} images of {len(plan.class_names)} "
            f"classes ({plan.val_images} held out), {plan.device} {plan.precision}"
        ]
        if plan.world_size > 1:
            parts.append(f"{plan.world_size} processes")
        if plan.resumed_from is not None:
            parts.append(f"resuming {plan.resumed_from} at epoch {plan.start_epoch}")
        if plan.optimizer_restarted:
            parts.append("with fresh optimizer moments (the checkpoint keeps none)")
        self.say(", ".join(parts))
        self._num_epochs = plan.num_epochs
        if self.mode is ProgressMode.live:
            self._start_bars(plan)

    def _start_bars(self, plan: TrainPlan) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self._progress.start()
        self._epochs = self._progress.add_task(
            "epochs", total=plan.num_epochs, completed=plan.start_epoch - 1, stats=""
        )
        self._batches = self._progress.add_task("batches", total=plan.batches_per_epoch, stats="")

    def on_epoch_start(self, epoch: int, num_batches: int, done_batches: int) -> None:
        if self._progress is not None:
            self._progress.reset(
                self._batches,
                total=num_batches,
                completed=done_batches,
                description=f"epoch {epoch}",
                stats="",
            )

    def on_batch(self, progress: BatchProgress) -> None:
        from camtool.cli._progress import ProgressMode, plain_line

        stats = (
            f"loss {progress.loss:.3f}  acc {progress.acc:6.1%}  {progress.images_per_s:6.0f} img/s"
        )
        if self._progress is not None:
            self._progress.update(self._batches, completed=progress.batch, stats=stats)
        elif self.mode is ProgressMode.lines:
            plain_line(
                f"camtool train: epoch {progress.epoch}/{self._num_epochs} batch "
                f"{progress.batch}/{progress.num_batches}  {' '.join(stats.split())}"
            )

    def on_validate(self, epoch: int) -> None:
        from camtool.cli._progress import ProgressMode, plain_line

        if self._progress is not None:
            self._progress.update(self._batches, description=f"epoch {epoch} validating")
        elif self.mode is ProgressMode.lines:
            plain_line(f"camtool train: epoch {epoch}/{self._num_epochs} validating")

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        if self._progress is not None:
            self._progress.advance(self._epochs)
        self.say(
            f"epoch {metrics.epoch:3d}  train loss {metrics.train_loss:.4f} "
            f"acc {metrics.train_acc:6.1%}  val loss {metrics.val_loss:.4f} "
            f"acc {metrics.val_acc:6.1%}  lr {metrics.lr:.2e}  {metrics.seconds:.1f}s  "
            f"{metrics.images_per_s:.0f} img/s"
            + (f"  {metrics.skipped} unreadable" if metrics.skipped else "")
        )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _summary(result: TrainResult) -> None:
    from rich.table import Table

    table = Table(title="camtool train", title_justify="left")
    for name in ("epoch", "train loss", "train acc", "val loss", "val acc", "lr", "s", "img/s"):
        table.add_column(name, justify="right")
    for m in result.history:
        mark = " *" if m.epoch == result.best_epoch else ""
        table.add_row(
            f"{m.epoch}{mark}",
            f"{m.train_loss:.4f}",
            f"{m.train_acc:.1%}",
            f"{m.val_loss:.4f}",
            f"{m.val_acc:.1%}",
            f"{m.lr:.2e}",
            f"{m.seconds:.1f}",
            f"{m.images_per_s:.0f}",
        )
    ending = "stopped early" if result.stopped_early else f"{result.epochs_run} epochs"
    table.caption = (
        f"val = images held out of train/; * best val accuracy {result.best_val_acc:.1%} "
        f"at epoch {result.best_epoch}; {ending}; {result.seconds:.0f}s"
    )
    out.print(table)
    for path in (result.best_checkpoint, result.last_checkpoint, result.curves_file):
        if path is not None:
            err.print(f"wrote {path}", markup=False, highlight=False)
