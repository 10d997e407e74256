"""``camtool batch-cam``: class activation maps for folders of images, manifest and gallery."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from camtool.choices import DeviceName, OutputFormat
from camtool.cli import _common as opts
from camtool.cli._app import command
from camtool.cli._common import choice_value, flag, option, refuse_class_with_topk, resolve_settings
from camtool.cli._output import out, print_report
from camtool.errors import EXIT_OK

if TYPE_CHECKING:
    from camtool.batch.pipeline import BatchReport

__all__ = ["batch_cam"]


@command(
    "batch-cam",
    no_args_is_help=True,
    short_help="Overlays for whole folders: manifest, gallery, resumable, shards.",
)
def batch_cam(
    inputs: list[str] = typer.Argument(
        ...,
        metavar="INPUT...",
        help="Folders (walked recursively), image files, or - to read paths from stdin.",
    ),
    model: Path | None = opts.MODEL,
    arch: str | None = opts.ARCH,
    output_dir: Path | None = opts.OUTPUT_DIR,
    class_: str | None = opts.CLASS,
    topk: int | None = opts.TOPK,
    batch_size: int | None = opts.BATCH_SIZE,
    workers: int | None = opts.WORKERS,
    device: DeviceName | None = opts.DEVICE,
    fmt: OutputFormat | None = option(
        "--format", metavar="FORMAT", help="Overlay format: jpg or png [default: jpg]."
    ),
    figure: bool = flag(
        "--figure", help="Write the original | heatmap | overlay figure (PNG) instead."
    ),
    save_array: bool = flag(
        "--save-array", help="Also write <name>.npz: cam, heatmap, logits, class_idx."
    ),
    overwrite: bool = flag(
        "--overwrite", help="Redo inputs already done (by default they are skipped)."
    ),
    shard: str | None = option(
        "--shard", metavar="I/N", help="Process only shard I of N (0 <= I < N)."
    ),
    max_pixels: int | None = option(
        "--max-pixels", min=1, metavar="N", help="Refuse larger images unread [default: 89478485]."
    ),
    alpha: float | None = opts.ALPHA,
    colormap: str | None = opts.COLORMAP,
    json_out: bool = opts.JSON,
    quiet: bool = flag("--quiet", "-q", help="Print only errors: no progress, no summary."),
    config: Path | None = opts.CONFIG,
) -> None:
    """Explain every image in folders: an overlay per image, manifest.jsonl/.csv and index.html.

    Outputs mirror the input tree under the output folder; a run that is stopped resumes where it
    left off when started again. Exit status: 0 all done, 3 some inputs failed, 1 nothing ran.

    \b
    Examples:
      camtool batch-cam photos/ -m best.pt -o maps/
      find photos -name '*.jpg' | camtool batch-cam - -m best.pt -o maps/
      camtool batch-cam photos/ -m model.onnx --shard 0/2 --json
    """
    refuse_class_with_topk(class_, topk)
    settings = resolve_settings(
        config,
        cam=dict(
            topk=topk, alpha=alpha, colormap=colormap, output_dir=output_dir, max_pixels=max_pixels
        ),
        runtime=dict(device=choice_value(device), batch_size=batch_size, workers=workers),
        model=dict(arch=arch),
    )
    from camtool.batch.inputs import STDIN, parse_shard

    shard_spec = parse_shard(shard) if shard is not None else None  # before torch is imported
    from camtool.batch.pipeline import run_batch
    from camtool.cli._progress import LINE_EVERY, ProgressReporter

    # bytes: file names need not be valid in the locale's encoding (text: a text-only stream)
    stdin = getattr(sys.stdin, "buffer", sys.stdin) if STDIN in inputs else None
    with ProgressReporter(
        "batch-cam", quiet=quiet, json_out=json_out, every=LINE_EVERY
    ) as reporter:

        def on_progress(done: int, total: int, row: Mapping[str, Any] | None) -> None:
            if done or total == 0:
                reporter.update(done, total)
            if row is not None and row.get("status") == "error":
                error = f"camtool: error: {row['path']}: {row.get('error')}"
                reporter.message(error, always=True)  # even with --quiet

        report = run_batch(
            inputs,
            settings,
            model_path=model,
            class_spec=class_,
            stdin=stdin,
            fmt=choice_value(fmt) or "jpg",
            figure=figure,
            save_array=save_array,
            overwrite=overwrite,
            shard=shard_spec,
            on_progress=on_progress,
        )
    if json_out or not quiet:
        print_report(report, json_out, _summary)
    if report.exit_code != EXIT_OK:
        raise typer.Exit(report.exit_code)


def _summary(report: BatchReport) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("ok", str(report.ok))
    table.add_row("skipped", f"{report.skipped} (done by an earlier run)")
    table.add_row("failed", str(report.failed))
    shard = f" (shard {report.shard[0]}/{report.shard[1]})" if report.shard else ""
    table.add_row("total", f"{report.total}{shard}")
    if report.top1 is not None:
        table.add_row("top-1", f"{report.top1:.2%} of {report.labelled} labelled inputs")
    table.add_row("time", f"{report.elapsed_s:.1f} s, {report.images_per_s:.1f} images/s")
    table.add_row("model", f"{report.model} on {report.device}")
    table.add_row("manifest", f"{report.manifest} (and {report.manifest_csv.name})")
    table.add_row("gallery", str(report.gallery))
    out.print(table)
