"""``camtool eval``: accuracy, and whether the maps point at the object."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from camtool.choices import DeviceName, LocalizationProtocol, Split, UpsampleMode
from camtool.cli import _common as opts
from camtool.cli._app import command
from camtool.cli._common import choice_value, option, resolve_settings
from camtool.cli._output import print_report, print_table, report_written

if TYPE_CHECKING:
    from camtool.evaluation.evaluate import EvalReport

__all__ = ["eval_command"]


@command(
    "eval",
    no_args_is_help=True,
    short_help="Accuracy, per-class F1, and how well the maps find the object.",
)
def eval_command(
    model: Path | None = option(
        "--model",
        "-m",
        metavar="FILE",
        help="camtool checkpoint, plain torchvision state dict, or .onnx export to evaluate "
        "[default: the zero-shot baseline: torchvision's ImageNet model of --arch restricted to "
        "the dataset's Imagenette classes].",
    ),
    arch: str | None = opts.ARCH,
    data_dir: Path | None = option(
        "--data-dir",
        metavar="DIR",
        help="Dataset folder [default: dataset.data_dir; when that is left at data/, the folder "
        "the checkpoint was trained on].",
    ),
    split: Split | None = option(
        "--split",
        metavar="SPLIT",
        help="val (the test split) or train (all of it, held-out part included) [default: val].",
    ),
    batch_size: int | None = opts.BATCH_SIZE,
    boxes: Path | None = option(
        "--boxes",
        metavar="PATH",
        help="Ground-truth boxes: CSV (path,x0,y0,x1,y1) or a folder of Pascal VOC / ImageNet "
        "XML files [default: boxes.csv at the dataset root, if any].",
    ),
    metrics: list[str] | None = option(
        "--metrics",
        metavar="GROUPS",
        help="Comma-separated groups: classification, localization, faithfulness, or all "
        "[default: classification, localization when boxes exist, faithfulness].",
    ),
    faithfulness_images: int | None = option(
        "--faithfulness-images",
        min=1,
        metavar="N",
        help="Most images for the faithfulness metrics (36 forward passes each) [default: 256].",
    ),
    output_dir: Path | None = option(
        "--output-dir",
        "-o",
        metavar="DIR",
        help="Where metrics.json, the figures and the settings go [default: eval_results/].",
    ),
    workers: int | None = opts.WORKERS,
    protocol: LocalizationProtocol | None = option(
        "--protocol",
        help="MaxBoxAccV2 by camtool's conventions, or wsol: exactly as the wsolevaluation "
        "reference (8-bit maps, every contour incl. holes, +1 IoU) [default: camtool].",
    ),
    upsample: UpsampleMode | None = option(
        "--upsample",
        help="aligned (map cells at their receptive-field centres) or conventional (bilinear, "
        "align_corners=False) [default: cam.upsample, aligned].",
    ),
    device: DeviceName | None = opts.DEVICE,
    config: Path | None = opts.CONFIG,
    overwrite: bool = opts.OVERWRITE,
    json_out: bool = opts.JSON,
    quiet: bool = opts.QUIET,
) -> None:
    """Evaluate a model: accuracy, and whether its maps point at the object.

    Classification: loss, top-1/top-5 accuracy, per-class precision/recall/F1, confusion
    matrix, most confident mistakes. Localization (with boxes): CAM top-1 and GT-known
    localization, MaxBoxAccV2. Faithfulness: deletion/insertion AUC, average drop, increase
    in confidence. Results and figures go to --output-dir.

    \b
    Examples:
      camtool eval --model checkpoints/best.pt
      camtool eval --data-dir data/imagenette2-160   # zero-shot ImageNet model
      camtool eval --model best.pt --boxes boxes.csv --metrics all -o results/
    """
    settings = resolve_settings(
        config,
        dataset=dict(data_dir=data_dir),
        runtime=dict(batch_size=batch_size, workers=workers, device=choice_value(device)),
        model=dict(arch=arch),
        cam=dict(upsample=choice_value(upsample)),
    )
    from camtool.cli._progress import LINE_EVERY, ProgressReporter
    from camtool.evaluation.evaluate import (
        DEFAULT_FAITHFULNESS_IMAGES,
        DEFAULT_OUTPUT_DIR,
        EvalOptions,
        parse_metric_groups,
        run_eval,
    )

    options = EvalOptions(
        split=choice_value(split) or "val",
        boxes=boxes,
        metrics=parse_metric_groups(metrics),
        faithfulness_images=faithfulness_images or DEFAULT_FAITHFULNESS_IMAGES,
        output_dir=output_dir if output_dir is not None else DEFAULT_OUTPUT_DIR,
        protocol=choice_value(protocol) or "camtool",
        overwrite=overwrite,
    )
    with ProgressReporter("eval", quiet=quiet, json_out=json_out, every=LINE_EVERY) as reporter:
        report = run_eval(
            model,
            settings,
            options,
            progress=lambda s, done, total: reporter.update(done, total, s),
        )
    print_report(report, json_out, _show, report.skipped, report.notes)


def _show(report: EvalReport) -> None:
    rows: list[tuple[str, str]] = []
    c, loc, faith = report.classification, report.localization, report.faithfulness
    if c is not None:
        rows += [
            ("images", str(c["n_images"])),
            ("loss", f"{c['loss']:.4f}"),
            ("top-1 accuracy", f"{c['top1']:.2%}"),
            (f"top-{c['top5_k']} accuracy", f"{c['top5']:.2%}"),
            ("macro F1", f"{c['macro_f1']:.4f}"),
        ]
    if loc is not None:
        rows += [
            ("images with boxes", str(loc["n_images"])),
            ("top-1 localization", f"{loc['top1_loc']:.2%}"),
            ("GT-known localization", f"{loc['gt_known_loc']:.2%}"),
            (f"MaxBoxAccV2 ({loc['protocol']})", f"{loc['maxboxacc_v2']:.2%}"),
        ]
        centre = loc["centre_box_baseline"]
        baseline = (
            f"GT-known {centre['gt_known_loc']:.2%}, MaxBoxAccV2 {centre['maxboxacc_v2']:.2%}"
        )
        rows.append(("a fixed centre box (no map)", baseline))
    if faith is not None:
        rows += [
            ("faithfulness images", str(faith["n_images"])),
            ("deletion AUC (lower is better)", f"{faith['deletion_auc']:.4f}"),
            ("insertion AUC (higher is better)", f"{faith['insertion_auc']:.4f}"),
            ("average drop", f"{faith['average_drop']:.2f}%"),
            ("increase in confidence", f"{faith['increase_in_confidence']:.2f}%"),
        ]
    print_table(
        ("metric", "value"),
        rows,
        right=("value",),
        title=f"{report.model} on {report.dataset}/{report.split}",
    )
    if c is not None:
        per_class = [
            (r["name"], *(f"{r[k]:.3f}" for k in ("precision", "recall", "f1")), str(r["support"]))
            for r in c["per_class"]
        ]
        scores = ("precision", "recall", "F1", "support")
        print_table(("class", *scores), per_class, right=scores, title="per class")
        if len(report.classes) <= 20:  # wider: confusion_matrix.png and metrics.json hold it
            print_table(
                ("", *report.classes),
                [
                    (name, *map(str, row))
                    for name, row in zip(report.classes, c["confusion_matrix"], strict=True)
                ],
                right=report.classes,
                title="confusion matrix (rows true, columns predicted)",
            )
    report_written(report.files.values())
