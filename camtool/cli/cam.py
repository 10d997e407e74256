"""``camtool cam``: class activation maps for a few images."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from camtool.choices import DeviceName
from camtool.cli._app import CamtoolCommand, app
from camtool.cli._common import (
    CLASS_SPEC_HELP,
    ArchOpt,
    ConfigOpt,
    DeviceOpt,
    JsonOpt,
    OutputDirOpt,
    device_value,
    refuse_class_with_topk,
    resolve_settings,
)
from camtool.cli._output import err, out, print_json
from camtool.errors import EXIT_FAILURE, EXIT_PARTIAL, ConfigError

if TYPE_CHECKING:
    from camtool.explain.files import ImageResult
    from camtool.explain.job import CamReport


@app.command(
    cls=CamtoolCommand,
    no_args_is_help=True,
    short_help="Maps for a few images: figure or overlay, .npz arrays, top-k.",
)
def cam(
    images: list[Path] = typer.Argument(
        ...,
        metavar="IMAGE...",
        help="Image files to explain.",
        show_default=False,
        readable=False,
    ),
    model: Path | None = typer.Option(
        None,
        "--model",
        "-m",
        metavar="FILE",
        help="camtool checkpoint, plain torchvision state dict, or .onnx export "
        "[default: torchvision's ImageNet model of --arch (ResNet-18), 1000 classes].",
        readable=False,
    ),
    arch: str | None = ArchOpt,
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        metavar="DIR",
        help="Without --model: keep only this dataset's classes (Imagenette WordNet-id folders) "
        "of the ImageNet model, the zero-shot baseline beside a model trained on it.",
        readable=False,
    ),
    class_: str | None = typer.Option(
        None, "--class", "-c", metavar="CLASS", help=CLASS_SPEC_HELP + " Not with --topk."
    ),
    topk: int | None = typer.Option(
        None,
        "--topk",
        "-k",
        min=1,
        metavar="K",
        help="Write a map for each of the K most probable classes [default: 1]. Not with --class.",
    ),
    alpha: float | None = typer.Option(
        None, metavar="ALPHA", help="Heatmap opacity, 0..1 [default: 0.5]."
    ),
    colormap: str | None = typer.Option(
        None, metavar="NAME", help="matplotlib colormap [default: jet]."
    ),
    output_dir: Path | None = OutputDirOpt,
    overlay_only: bool = typer.Option(
        False, "--overlay-only", help="Write just the overlay, at the image's own resolution."
    ),
    save_array: bool = typer.Option(
        False, "--save-array", help="Also write <stem>.npz: cam, heatmap, logits, class_idx."
    ),
    device: DeviceName | None = DeviceOpt,
    config: Path | None = ConfigOpt,
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace files in -o DIR that camtool did not write."
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Explain images: original | heatmap | overlay figure, titled with class and probability.

    Exit status: 0 all written, 3 some images failed, 1 none could be explained.

    \b
    Examples:
      camtool cam dog.jpg --model best.pt --class 3 -o maps/
      camtool cam a.jpg b.jpg --topk 2 --save-array
      camtool cam a.jpg --data-dir data/imagenette2-160   # zero-shot ImageNet
    """
    refuse_class_with_topk(class_, topk)
    if data_dir is not None and model is not None:
        raise ConfigError(
            "--data-dir chooses the classes of the ImageNet model used without --model; "
            "a --model file has its own classes: give one of them"
        )
    settings = resolve_settings(
        config,
        {
            "cam": {"topk": topk, "alpha": alpha, "colormap": colormap, "output_dir": output_dir},
            "runtime": {"device": device_value(device)},
            "model": {"arch": arch},
        },
    )
    from camtool.explain.job import run_cam
    from camtool.runtime import dataset_classes

    report = run_cam(
        images,
        settings,
        model_path=model,
        imagenet_classes=dataset_classes(data_dir) if data_dir is not None else None,
        class_spec=class_,
        overlay_only=overlay_only,
        save_array=save_array,
        on_result=_show_error if json_out else _show,
        overwrite=overwrite,
        locate=json_out,  # peak and box are in the JSON only
    )
    if json_out:
        print_json(
            {
                "model": report.model.source if report.model is not None else None,
                "device": report.device,
                "output_dir": str(report.output_dir),
                "images": [r.to_dict() for r in report.results],
                "failed": report.failed,
            }
        )
    else:
        _errors_only(report)
    if report.failed:
        every = report.failed == len(report.results)
        raise typer.Exit(EXIT_FAILURE if every else EXIT_PARTIAL)


def _show_error(result: ImageResult) -> None:
    """With ``--json``: the JSON holds every result; a failed image also gets its line on stderr."""
    if not result.ok:
        err.print(f"camtool: error: {result.error}", markup=False, highlight=False)


def _show(result: ImageResult) -> None:
    from rich.table import Table

    if not result.ok:
        _show_error(result)
        return
    table = Table(title=result.input, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("class", justify="right")
    table.add_column("name")
    table.add_column("probability", justify="right")
    table.add_column("logit", justify="right")
    rows = [(str(rank), p) for rank, p in enumerate(result.topk, 1)]
    if result.target is not None and result.target.index not in {p.index for p in result.topk}:
        rows.append(("--class", result.target))
    for rank, p in rows:
        table.add_row(rank, str(p.index), p.name, f"{p.probability:.4f}", f"{p.logit:.3f}")
    out.print(table)
    for path in result.outputs:
        err.print(f"wrote {path}", markup=False, highlight=False)


def _errors_only(report: CamReport) -> None:
    """After the per-image errors, one summary line when there were several images."""
    if report.failed and len(report.results) > 1:
        err.print(
            f"{report.failed} of {len(report.results)} images failed", markup=False, highlight=False
        )
