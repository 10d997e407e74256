"""Aligned vs conventional map placement on the demo's shapes, at output stride 32 and 16.

Draws the demo's dataset once (:func:`camtool.demo.pipeline.draw_demo_data`, with
:data:`camtool.demo.pipeline.DEMO_DEFAULTS`' sizes), trains one ResNet-18 per output stride with
the demo's recipe (:func:`camtool.demo.pipeline.demo_settings`, only ``output_stride`` differs),
then evaluates each model twice with :func:`camtool.evaluation.evaluate.run_eval`, once per
``cam.upsample`` placement: same data, same models, same maps, only the placement of the cells
differs. Prints a Markdown table: accuracy, GT-known localization (CAM paper protocol),
MaxBoxAccV2 (camtool's protocol and wsolevaluation's) and deletion / insertion AUC, beside a
baseline that looks at no image: one fixed box of the test boxes' mean size at the image centre
(a map-free reference in the spirit of the centre baselines of Choe et al., CVPR'20).

Run: ``python benchmarks/alignment.py [--epochs N] [--image-size S] [--faithfulness N]
[--workdir DIR]``; about 3 minutes per stride on two idle CPU cores with the demo's defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from camtool.demo.pipeline import DEMO_DEFAULTS, DemoConfig, demo_settings, draw_demo_data
from camtool.evaluation.evaluate import EvalOptions, run_eval
from camtool.training.loop import train


def evaluate(
    checkpoint: Path, settings: Any, out: Path, faithfulness: int, upsample: str
) -> dict[str, Any]:
    """Localization (both protocols) and faithfulness of one model with one placement."""
    settings = settings.model_copy(deep=True)
    settings.cam.upsample = upsample
    figures: dict[str, Any] = {"upsample": upsample}
    for protocol in ("camtool", "wsol"):
        groups = {"classification", "localization"}
        if protocol == "camtool" and faithfulness:
            groups.add("faithfulness")
        report = run_eval(
            checkpoint,
            settings,
            EvalOptions(
                metrics=frozenset(groups),
                faithfulness_images=max(faithfulness, 1),
                output_dir=out / f"eval-{upsample}-{protocol}",
                protocol=protocol,
                mistakes=0,
            ),
        )
        assert report.classification is not None and report.localization is not None
        figures["accuracy"] = report.classification["top1"]
        if protocol == "camtool":
            figures["centre_box"] = report.localization["centre_box_baseline"]
            figures["gt_known_loc"] = report.localization["gt_known_loc"]
            figures["maxboxacc_v2"] = report.localization["maxboxacc_v2"]
        else:
            figures["maxboxacc_v2_wsol"] = report.localization["maxboxacc_v2"]
        if report.faithfulness is not None:
            figures["deletion_auc"] = report.faithfulness["deletion_auc"]
            figures["insertion_auc"] = report.faithfulness["insertion_auc"]
    return figures


def run_stride(
    config: DemoConfig, out: Path, stride: int, faithfulness: int, reuse: bool
) -> list[dict[str, Any]]:
    """Train one model at ``stride`` on ``out/data`` (or, with ``reuse``, take the one trained
    there before) and evaluate it with both placements."""
    config = dataclasses.replace(config, output_stride=stride)
    settings = demo_settings(out / f"stride{stride}", config, "cpu")
    settings.dataset.data_dir = out / "data"
    checkpoint = out / f"stride{stride}" / "checkpoints" / "best.pt"
    started = time.perf_counter()
    if not (reuse and checkpoint.is_file()):
        result = train(settings, crop_scale=config.crop_scale, overwrite=True)
        assert result.best_checkpoint is not None
        checkpoint = result.best_checkpoint
    seconds = time.perf_counter() - started
    rows = []
    for upsample in ("aligned", "conventional"):
        row = evaluate(checkpoint, settings, out / f"stride{stride}", faithfulness, upsample)
        row.update(output_stride=stride, train_seconds=round(seconds, 1))
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]], size: int) -> str:
    """The figures side by side, as a Markdown table."""
    names = [
        ("accuracy", "accuracy", "{:.1%}"),
        ("gt_known_loc", "GT-known loc (20% box, IoU 0.5)", "{:.1%}"),
        ("maxboxacc_v2", "MaxBoxAccV2 (camtool)", "{:.1%}"),
        ("maxboxacc_v2_wsol", "MaxBoxAccV2 (wsolevaluation)", "{:.1%}"),
        ("deletion_auc", "deletion AUC (lower is better)", "{:.3f}"),
        ("insertion_auc", "insertion AUC (higher is better)", "{:.3f}"),
    ]
    heads = [
        f"stride {r['output_stride']} ({-(-size // r['output_stride'])}x"
        f"{-(-size // r['output_stride'])}), {r['upsample']}"
        if isinstance(r["output_stride"], int)
        else "no map: centre box"
        for r in rows
    ]
    lines = ["| metric | " + " | ".join(heads) + " |", "|---" * (len(rows) + 1) + "|"]
    for key, label, fmt in names:
        if any(key in r for r in rows):
            cells = [fmt.format(r[key]) if key in r else "-" for r in rows]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=DEMO_DEFAULTS.epochs)
    parser.add_argument("--image-size", type=int, default=DEMO_DEFAULTS.image_size)
    parser.add_argument("--train-per-class", type=int, default=DEMO_DEFAULTS.train_per_class)
    parser.add_argument("--val-per-class", type=int, default=DEMO_DEFAULTS.val_per_class)
    parser.add_argument("--strides", type=int, nargs="+", default=[32, 16])
    parser.add_argument("--faithfulness", type=int, default=200, help="images for del/ins AUC")
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here")
    parser.add_argument(
        "--reuse", action="store_true", help="evaluate models already trained in --workdir"
    )
    args = parser.parse_args()
    config = dataclasses.replace(
        DEMO_DEFAULTS,
        epochs=args.epochs,
        image_size=args.image_size,
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
    )
    with tempfile.TemporaryDirectory(prefix="camtool-align-") as tmp:
        out = args.workdir or Path(tmp)
        draw_demo_data(out / "data", config)  # the same bytes for the same config: --reuse is safe
        rows = [
            r
            for s in args.strides
            for r in run_stride(config, out, s, args.faithfulness, args.reuse)
        ]
        centre = {"output_stride": "-", "upsample": "centre box", **rows[0]["centre_box"]}
        rows.append(centre)  # the same for every model: it looks at no map
    print(table(rows, config.image_size))


if __name__ == "__main__":
    main()
