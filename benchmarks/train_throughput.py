"""Is ``camtool train``'s loop as fast as a bare PyTorch loop? Images per second, side by side.

Both loops train the same network (a ResNet from scratch) on the same generated shapes (or
``--data-dir``), with the same batch size, optimizer (Adam), loader settings (workers, pinned
memory on CUDA, the same ``collate_skip_none``, whole batches only) and transforms. The bare loop
is the textbook one: shuffle, forward, cross-entropy, ``zero_grad``, ``backward``, ``step``.
camtool's is :func:`camtool.training.loop.train` itself (with its validation, checkpoints and logs,
which are not counted: its ``images_per_s`` covers the training phase only, loading included).

The first epoch of each run is a warm-up and is not counted. Runs alternate (camtool, bare,
camtool, bare ...) so that a change in machine load hits both; the median of ``--rounds`` is
reported, and the ratio camtool / bare (aim: at least 0.95).

Run: ``python benchmarks/train_throughput.py [--device cpu] [--image-size 64] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from camtool.cli._progress import ProgressReporter, TrainProgress
from camtool.core.device import amp_dtype, autocast, place_model, resolve_device, to_device
from camtool.core.model import build_model
from camtool.data.datasets import collate_skip_none
from camtool.data.splits import make_splits
from camtool.data.synthetic import make_shapes_dataset
from camtool.settings import Settings, load_settings
from camtool.training.loop import train


def settings_for(args: argparse.Namespace, data: Path, out: Path) -> Settings:
    """The settings both loops follow."""
    return load_settings(
        None,
        {
            "model": {"arch": args.arch, "pretrained": False},
            "dataset": {
                "name": "folder",
                "data_dir": str(data),
                "img_size": args.image_size,
                "val_size": args.holdout,
            },
            "training": {
                "num_epochs": args.epochs,
                "batch_size": args.batch_size,
                "optimizer": "adam",
                "early_stopping_patience": 0,
                "checkpoint_dir": str(out),
                "log_every": 1000,
                "save_every": 1000,
            },
            "runtime": {"device": args.device, "workers": args.workers},
        },
    )


def camtool_rate(settings: Settings) -> float:
    """Training images per second of :func:`camtool.training.loop.train`, epochs after the first."""
    with ProgressReporter("train") as reporter:  # per-epoch lines (a live bar on a terminal)
        result = train(settings, overwrite=True, observer=TrainProgress(reporter))
    # images / seconds over epochs of equal size: the harmonic mean of their rates
    return statistics.harmonic_mean([m.images_per_s for m in result.history[1:]])


def bare_rate(settings: Settings) -> float:
    """Training images per second of a textbook loop over the same data and model."""
    device = resolve_device(settings.runtime.device.value)
    data = settings.dataset
    splits = make_splits(data.data_dir, data.name.value, data.img_size, data.val_size)
    loader = DataLoader(
        splits.train,
        batch_size=settings.training.batch_size,
        shuffle=True,
        num_workers=settings.runtime.workers,
        pin_memory=device.type == "cuda",
        collate_fn=collate_skip_none,
        drop_last=True,
        persistent_workers=settings.runtime.workers > 0,
    )
    channels_last = device.type == "cuda"
    model = build_model(settings.model.arch, len(splits.class_names))
    model = place_model(model, device, channels_last=channels_last)
    amp = amp_dtype(device, settings.runtime.amp)
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=settings.training.learning_rate,
        weight_decay=settings.training.weight_decay,
    )
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    model.train()
    rates = []
    for _ in range(settings.training.num_epochs):
        images_seen = 0
        started = time.perf_counter()
        for images, labels, _skipped in loader:
            images = to_device(images, device, channels_last=channels_last)
            labels = labels.to(device, non_blocking=True)
            with autocast(device, amp):
                loss = F.cross_entropy(model(images).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            images_seen += labels.numel()
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(images_seen / (time.perf_counter() - started))
    return statistics.harmonic_mean(rates[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="a dataset (default: generated shapes)")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--per-class", type=int, default=80, help="generated train images/class")
    parser.add_argument("--holdout", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="per run; the first is warm-up")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first is not counted)")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="camtool-throughput-") as tmp:
        work = Path(tmp)
        data = args.data_dir
        if data is None:
            data = make_shapes_dataset(
                work / "data",
                train_per_class=args.per_class,
                val_per_class=2,
                image_size=args.image_size,
            )
        settings = settings_for(args, data, work / "checkpoints")
        runs: dict[str, list[float]] = {"camtool": [], "bare": []}
        for round_ in range(args.rounds):
            runs["camtool"].append(camtool_rate(settings))
            runs["bare"].append(bare_rate(settings))
            print(
                f"round {round_ + 1}: camtool {runs['camtool'][-1]:.1f} img/s, "
                f"bare {runs['bare'][-1]:.1f} img/s",
                file=sys.stderr,
            )
    camtool, bare = statistics.median(runs["camtool"]), statistics.median(runs["bare"])
    report = {
        "device": str(resolve_device(args.device)),
        "threads": torch.get_num_threads(),
        "arch": args.arch,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "camtool_images_per_s": round(camtool, 2),
        "bare_images_per_s": round(bare, 2),
        "ratio": round(camtool / bare, 3),
        "rounds": {k: [round(v, 2) for v in vs] for k, vs in runs.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{'loop':<10}{'images/s (median)':>20}   rounds")
        for name in ("camtool", "bare"):
            rounds = ", ".join(f"{v:.1f}" for v in runs[name])
            print(f"{name:<10}{statistics.median(runs[name]):>20.1f}   {rounds}")
        print(
            f"ratio camtool / bare: {report['ratio']:.3f}x  ({report['device']}, "
            f"{report['threads']} threads, {args.arch} at {args.image_size} px, "
            f"batch {args.batch_size}, {args.workers} workers)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
