"""``camtool export``: one ONNX or TorchScript graph that returns the logits and the maps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from camtool.choices import ExportFormat
from camtool.cli import _common as opts
from camtool.cli._app import command
from camtool.cli._common import choice_value, flag, option
from camtool.cli._output import err, print_report, print_table, report_written

if TYPE_CHECKING:
    from camtool.export.exporter import ExportReport

__all__ = ["export"]


@command(no_args_is_help=True, short_help="ONNX / TorchScript graph that outputs logits and maps.")
def export(
    model: Path = option(
        "--model",
        "-m",
        metavar="FILE",
        help="camtool checkpoint (or plain torchvision state dict) to export.",
        default=...,
    ),
    arch: str | None = opts.ARCH,
    fmt: ExportFormat | None = option(
        "--format", "-f", metavar="FORMAT", help="onnx or torchscript [default: onnx]."
    ),
    output: Path | None = option(
        "--output",
        "-o",
        metavar="FILE",
        help="File to write [default: next to the checkpoint, <stem>.onnx or "
        "<stem>.torchscript.pt].",
    ),
    opset: int | None = option("--opset", metavar="N", help="ONNX opset, 12..20 [default: 17]."),
    overwrite: bool = flag(
        "--overwrite", help="Replace the output file if it exists (by default: refuse)."
    ),
    json_out: bool = opts.JSON,
) -> None:
    """Export a model that explains itself: images -> logits and class activation maps.

    The graph has input 'images' (N x 3 x H x W, normalised; batch and size dynamic) and outputs
    'logits' (N x C) and 'cams' (N x C x h x w, raw maps). Class names, image size and mean/std
    are stored in the file, so 'camtool cam --model FILE.onnx' uses it directly. The file is
    checked against PyTorch on two input sizes before it is kept.

    \b
    Examples:
      camtool export --model checkpoints/best.pt -o model.onnx
      camtool cam photo.jpg --model model.onnx
    """
    from camtool.export.options import check_export_options
    from camtool.paths import require_file

    fmt_name = choice_value(fmt) or "onnx"
    check_export_options(fmt_name, opset)  # before torch and the model are loaded
    require_file(model, "checkpoint")
    from camtool.export.exporter import ExportCheckError, export_model

    try:
        report = export_model(
            model,
            fmt=fmt_name,
            output=output,
            opset=opset,
            arch=arch,
            on_progress=None if json_out else err.print,
            overwrite=overwrite,
        )
    except ExportCheckError as exc:
        print_report(exc.report, json_out, _show)
        raise
    print_report(report, json_out, _show)
    if not json_out:
        report_written([report.file])


def _show(report: ExportReport) -> None:
    fmt = report.format + (f" (opset {report.opset})" if report.opset is not None else "")
    diffs = ("max |diff| logits", "max |diff| cams")
    print_table(
        ("input", "cams", *diffs, "ok"),
        [
            (
                "x".join(map(str, s.input_shape)),
                "x".join(map(str, s.cams_shape)),
                f"{s.logits_max_diff:.2e}",
                f"{s.cams_max_diff:.2e}",
                "yes" if s.passed else "NO",
            )
            for s in report.samples
        ],
        right=diffs,
        title=f"{report.file}: {fmt}, exported in {report.export_seconds:.1f} s",
        title_justify="center",
    )
