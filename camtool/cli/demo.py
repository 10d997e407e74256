"""``camtool demo``: see camtool work on a fresh machine, with no network and no data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from camtool.choices import DeviceName
from camtool.cli import _common as opts
from camtool.cli._app import command
from camtool.cli._common import choice_value, flag, option
from camtool.cli._output import err, print_report, print_table

__all__ = ["demo_cmd"]

if TYPE_CHECKING:
    from camtool.demo.pipeline import DemoReport


@command("demo", short_help="Everything offline on generated shapes: train, map, score.")
def demo_cmd(
    output_dir: Path = option(
        "--output-dir",
        "-o",
        metavar="DIR",
        help="Folder for the data, model and maps.",
        default=Path("camtool-demo"),
    ),
    arch: str | None = option(
        "--arch",
        metavar="ARCH",
        help="Network to train: densenet121, efficientnet_b0, mobilenet_v2 ... or timm:<name> "
        "[default: resnet18].",
    ),
    device: DeviceName | None = opts.DEVICE,
    overwrite: bool = flag(
        "--overwrite",
        help="Replace files in DIR/checkpoints and DIR/cams that an earlier demo did not write.",
    ),
    json_out: bool = opts.JSON,
    quiet: bool = opts.QUIET,
) -> None:
    """Draw a small shapes dataset, train a ResNet-18 (or --arch) from scratch, map what it sees.

    Needs no network and takes a few minutes on a laptop CPU. Writes DIR/data (the images and
    their boxes), DIR/checkpoints (best.pt, curves.png ...) and DIR/cams (maps of test images).
    An earlier demo in DIR is replaced; other files there only with --overwrite. DIR is locked
    while the demo runs.

    \b
    Examples:
      camtool demo -o camtool-demo
      camtool demo --device cpu --json > demo.json
    """
    from camtool.cli._progress import ProgressReporter, TrainProgress
    from camtool.demo.pipeline import run_demo

    with ProgressReporter("demo", quiet=quiet, json_out=json_out) as reporter:
        report = run_demo(
            output_dir,
            device=choice_value(device),
            arch=arch,
            observer=TrainProgress(reporter),
            on_stage=lambda message: reporter.message(f"camtool demo: {message}"),
            overwrite=overwrite,
        )
    print_report(report, json_out, _summary, report.skipped)


def _summary(report: DemoReport) -> None:
    training, loc = report.training, report.localization
    rows = [
        ("test accuracy", f"{report.test.accuracy:.1%} on {report.test.images} images"),
        ("best val accuracy", f"{training.best_val_acc:.1%} (epoch {training.best_epoch})"),
    ]
    if loc is not None:
        centre = loc.get("centre_box_baseline") or {}
        scores = (
            f"MaxBoxAccV2 {loc['maxboxacc_v2']:.1%}; GT-known loc {loc['gt_known_loc']:.1%}, "
            f"top-1 loc {loc['top1_loc']:.1%} (box from the map at 20% of its max, IoU >= 0.5; "
            f"{loc['upsample']} maps)"
        )
        rows.append(("maps find the shape", scores))
        if centre:
            baseline = (
                f"MaxBoxAccV2 {centre['maxboxacc_v2']:.1%}; GT-known loc "
                f"{centre['gt_known_loc']:.1%} (no map: what the maps must beat)"
            )
            rows.append(("a fixed centre box", baseline))
    rows += [
        ("model", str(training.best_checkpoint)),
        ("training curves", str(training.curves_file)),
        ("class activation maps", f"{report.cams_dir}/ ({len(report.cam_files)} files)"),
        ("dataset", f"{report.data_dir}/ (boxes in {report.data_dir / 'boxes.csv'})"),
        ("time", f"{report.seconds:.0f}s"),
    ]
    print_table(("what", "value"), rows, title="camtool demo", show_header=False)
    err.print(
        f"look at the maps in {report.cams_dir}/; explain any image with: camtool cam IMAGE "
        f"--model {training.best_checkpoint}"
    )
