"""Does ``model.output_stride = 16`` give better boxes than 32? Train both on the shapes and see.

On the demo's synthetic shapes dataset (``camtool.data.synthetic``, boxes known), this trains two
small ResNet-18s from scratch with :func:`camtool.training.loop.train`, identical but for
``model.output_stride`` (at the demo's 64 px, 32 gives a 2x2 map; 16 keeps the last ResNet stage
at full resolution, a 4x4 map), evaluates each on the ``val/`` split with
:func:`camtool.evaluation.evaluate.run_eval` and prints a Markdown table, side by side: accuracy,
top-1
localization, GT-known localization and MaxBoxAccV2 (and, with ``--faithfulness N``, deletion /
insertion AUC on N images).

Run: ``python benchmarks/output_stride.py [--epochs 15] [--image-size 64] [--workdir DIR]``.
With the defaults it takes about 20 minutes on two idle CPU cores, a minute or two on a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from camtool.cli._progress import ProgressReporter, TrainProgress
from camtool.data.synthetic import make_shapes_dataset
from camtool.evaluation.evaluate import EvalOptions, run_eval
from camtool.settings import load_settings
from camtool.training.loop import train


def settings_for(args: argparse.Namespace, data: Path, out: Path, stride: int) -> Any:
    """The settings of one run: the same for both strides but for ``model.output_stride``."""
    return load_settings(
        None,
        {
            "model": {"arch": args.arch, "pretrained": False, "output_stride": stride},
            "dataset": {
                "name": "folder",
                "data_dir": str(data),
                "img_size": args.image_size,
                "val_size": args.holdout,
            },
            "training": {
                "num_epochs": args.epochs,
                "batch_size": args.batch_size,
                "learning_rate": args.lr,
                "optimizer": "adamw",
                "scheduler": "cosine",
                "early_stopping_patience": 0,
                "checkpoint_dir": str(out / f"stride{stride}" / "checkpoints"),
                "seed": args.seed,
                "log_every": 1000,
            },
            "runtime": {"device": args.device, "workers": args.workers},
        },
    )


def run_one(args: argparse.Namespace, data: Path, out: Path, stride: int) -> dict[str, Any]:
    """Train and evaluate one model; return its figures."""
    settings = settings_for(args, data, out, stride)
    started = time.perf_counter()
    with ProgressReporter("train") as reporter:  # per-epoch lines (a live bar on a terminal)
        result = train(
            settings, crop_scale=(0.5, 1.0), overwrite=True, observer=TrainProgress(reporter)
        )
    train_seconds = time.perf_counter() - started
    assert result.best_checkpoint is not None
    groups = {"classification", "localization"} | ({"faithfulness"} if args.faithfulness else set())
    report = run_eval(
        result.best_checkpoint,
        settings,
        EvalOptions(
            metrics=frozenset(groups),
            faithfulness_images=max(args.faithfulness, 1),
            output_dir=out / f"stride{stride}" / "eval",
        ),
    )
    assert report.classification is not None and report.localization is not None
    loc = report.localization
    figures = {
        "output_stride": stride,
        "map": f"{args.image_size // stride}x{args.image_size // stride}",
        "accuracy": report.classification["top1"],
        "top1_loc": loc["top1_loc"],
        "gt_known_loc": loc["gt_known_loc"],
        "maxboxacc_v2": loc["maxboxacc_v2"],
        "best_epoch": result.best_epoch,
        "train_seconds": round(train_seconds, 1),
    }
    if report.faithfulness is not None:
        figures["deletion_auc"] = report.faithfulness["deletion_auc"]
        figures["insertion_auc"] = report.faithfulness["insertion_auc"]
    print(json.dumps(figures), file=sys.stderr, flush=True)
    return figures


def table(rows: list[dict[str, Any]]) -> str:
    """The figures side by side, as a Markdown table."""
    names = [
        ("map", "CAM size", "{}"),
        ("accuracy", "accuracy", "{:.1%}"),
        ("top1_loc", "top-1 loc", "{:.1%}"),
        ("gt_known_loc", "GT-known loc", "{:.1%}"),
        ("maxboxacc_v2", "MaxBoxAccV2", "{:.1%}"),
        ("deletion_auc", "deletion AUC", "{:.3f}"),
        ("insertion_auc", "insertion AUC", "{:.3f}"),
        ("train_seconds", "train time (s)", "{:.0f}"),
    ]
    header = "| metric | " + " | ".join(f"stride {r['output_stride']}" for r in rows) + " |"
    lines = [header, "|---" * (len(rows) + 1) + "|"]
    for key, label, fmt in names:
        if all(key in r for r in rows):
            lines.append(f"| {label} | " + " | ".join(fmt.format(r[key]) for r in rows) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--image-size", type=int, default=64, help="image and input side")
    parser.add_argument("--train-per-class", type=int, default=300)
    parser.add_argument("--val-per-class", type=int, default=50)
    parser.add_argument("--holdout", type=int, default=100, help="train/ images held out")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faithfulness", type=int, default=0, help="images for del/ins AUC")
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="camtool-stride-") as tmp:
        out = args.workdir or Path(tmp)
        data = make_shapes_dataset(
            out / "shapes",
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
            image_size=args.image_size,
            seed=args.seed,
        )
        rows = [run_one(args, data, out, stride) for stride in (32, 16)]
    print(table(rows))


if __name__ == "__main__":
    main()
