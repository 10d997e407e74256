"""``camtool train``: fine-tune a CAM network, with progress on stderr."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from camtool.choices import DeviceName, Optimizer, Scheduler
from camtool.cli import _common as opts
from camtool.cli._app import command
from camtool.cli._common import choice_value, flag, option, resolve_settings
from camtool.cli._output import print_report, print_table, report_written

__all__ = ["train_cmd"]

if TYPE_CHECKING:
    from camtool.training.types import TrainResult


@command("train", short_help="Fine-tune a GAP + linear-head classifier: checkpoints, curves.")
def train_cmd(
    config: Path | None = opts.CONFIG,
    data_dir: Path | None = option(
        "--data-dir", metavar="DIR", help="Dataset folder with train/ and val/ [default: data/]."
    ),
    epochs: int | None = option("--epochs", metavar="N", help="Maximum epochs [default: 50]."),
    batch_size: int | None = option(
        "--batch-size", metavar="N", help="Images per step [default: 64]."
    ),
    lr: float | None = option("--lr", metavar="LR", help="Initial learning rate [default: 0.001]."),
    optimizer: Optimizer | None = option(
        "--optimizer", metavar="NAME", help="adam, adamw or sgd [default: adam]."
    ),
    scheduler: Scheduler | None = option(
        "--scheduler", metavar="NAME", help="reduce_lr or cosine [default: reduce_lr]."
    ),
    val_size: float | None = option(
        "--val-size",
        metavar="N|F",
        help="Images held out of train/ for validation: a count, or a fraction 0 < F < 1 "
        "[default: 0.1].",
    ),
    img_size: int | None = option(
        "--img-size", metavar="PIXELS", help="Side the images are resized to [default: 160]."
    ),
    arch: str | None = option(
        "--arch",
        metavar="ARCH",
        help="Network: resnet18, densenet121, efficientnet_b0, mobilenet_v2, regnet_y_400mf ... "
        "or timm:<name> [default: resnet18].",
    ),
    device: DeviceName | None = opts.DEVICE,
    pretrained: bool | None = option(
        "--pretrained/--no-pretrained",
        help="Start from ImageNet weights (needs them cached or a network) [default: yes].",
    ),
    workers: int | None = opts.WORKERS,
    seed: int | None = option(
        "--seed", metavar="N", help="Seed of init, order, augmentation [default: 0]."
    ),
    checkpoint_dir: Path | None = option(
        "--checkpoint-dir",
        metavar="DIR",
        help="Where checkpoints and logs go [default: checkpoints/].",
    ),
    resume: bool = flag(
        "--resume",
        help="Continue the run in --checkpoint-dir from its last.pt (also after Ctrl-C), "
        "with the settings it was started with; flags given now override them "
        "(e.g. --epochs 30 to train longer).",
    ),
    resume_from: Path | None = option(
        "--resume-from",
        metavar="FILE",
        help="Like --resume, but from this checkpoint (e.g. best.pt or epoch_004.pt; these "
        "keep no optimizer moments, so the optimizer starts them afresh).",
    ),
    overwrite: bool = flag(
        "--overwrite",
        help="Start afresh in a --checkpoint-dir that holds an earlier run, deleting its "
        "checkpoints and logs (by default camtool refuses).",
    ),
    json_out: bool = opts.JSON,
    quiet: bool = opts.QUIET,
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
        model=dict(pretrained=pretrained, arch=arch),
        dataset=dict(data_dir=data_dir, img_size=img_size, val_size=val_size),
        training=dict(
            num_epochs=epochs,
            batch_size=batch_size,
            learning_rate=lr,
            optimizer=choice_value(optimizer),
            scheduler=choice_value(scheduler),
            seed=seed,
            checkpoint_dir=checkpoint_dir,
        ),
        runtime=dict(device=choice_value(device), workers=workers),
    )
    from camtool.cli._progress import ProgressReporter, TrainProgress
    from camtool.training.loop import train

    with ProgressReporter("train", quiet=quiet, json_out=json_out) as reporter:
        result = train(
            settings,
            resume=resume_from or resume or None,
            observer=TrainProgress(reporter),
            overwrite=overwrite,
        )
    if result.is_main:  # other torchrun ranks print nothing
        print_report(result, json_out, _summary, result.skipped)


def _summary(result: TrainResult) -> None:
    columns = ("epoch", "train loss", "train acc", "val loss", "val acc", "lr", "s", "img/s")
    rows = [
        (
            f"{m.epoch}{' *' if m.epoch == result.best_epoch else ''}",
            f"{m.train_loss:.4f}",
            f"{m.train_acc:.1%}",
            f"{m.val_loss:.4f}",
            f"{m.val_acc:.1%}",
            f"{m.lr:.2e}",
            f"{m.seconds:.1f}",
            f"{m.images_per_s:.0f}",
        )
        for m in result.history
    ]
    ending = "stopped early" if result.stopped_early else f"{result.epochs_run} epochs"
    caption = (
        f"val = images held out of train/; * best val accuracy {result.best_val_acc:.1%} "
        f"at epoch {result.best_epoch}; {ending}; {result.seconds:.0f}s"
    )
    print_table(columns, rows, right=columns, title="camtool train", caption=caption)
    report_written((result.best_checkpoint, result.last_checkpoint, result.curves_file))
