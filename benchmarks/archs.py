"""The accepted archs side by side: parameters, map size at 160 px, ``batch-cam`` images/s.

For each arch it saves a camtool checkpoint (random weights, 10 classes, img_size 160, the arch's
own output stride) and runs :func:`camtool.batch.pipeline.run_batch` end to end (decode, CAMs,
JPEG overlays, manifest, gallery) on the same folder of photo-like 320x240 JPEGs, in process,
with the same batch size and workers. The archs are run in turn, round after round, so that
changes in the machine's load hit all of them alike; the table reports the median images/s over
the rounds (the first batch of each run includes its warm-up, as a user's run does).

Usage (from the repository root)::

    .venv/bin/python benchmarks/archs.py [--images 32] [--rounds 3] [--batch-size 8]
        [--workers 0] [--archs resnet18,densenet121,...] [--markdown]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout where camtool is not installed
    sys.path.insert(0, str(REPO))
if str(REPO / "benchmarks") not in sys.path:
    sys.path.insert(0, str(REPO / "benchmarks"))

__all__ = ["DEFAULT_ARCHS", "main"]

DEFAULT_ARCHS = (
    "resnet18",
    "resnet50",
    "densenet121",
    "efficientnet_b0",
    "efficientnet_v2_s",
    "mobilenet_v2",
    "mnasnet1_0",
    "regnet_y_400mf",
    "shufflenet_v2_x1_0",
    "googlenet",
    "inception_v3",
    "squeezenet1_1",
)


def _describe(arch: str, folder: Path) -> tuple[Path, int, str, str]:
    """Save a checkpoint of ``arch``; return it, its parameter count and its map sizes."""
    import torch

    from camtool.core.archs import family_of
    from camtool.core.checkpoint import save_checkpoint
    from camtool.core.model import build_model

    torch.manual_seed(0)
    model = build_model(arch, 10).eval()
    params = sum(p.numel() for p in model.parameters())
    x = torch.zeros(1, 3, 160, 160)
    sizes = []
    family = family_of(arch)
    for stride in family.strides if family is not None else (None,):
        with torch.no_grad():
            h, w = build_model(arch, 10, output_stride=stride).eval().feature_map(x).shape[-2:]
        sizes.append(f"{h}x{w} (stride {stride})")
    path = save_checkpoint(
        folder / f"{arch}.pt", model, class_names=[f"c{i}" for i in range(10)], img_size=160
    )
    return path, params, sizes[0], sizes[1] if len(sizes) > 1 else "-"


def _images_per_second(ckpt: Path, photos: Path, out: Path, batch: int, workers: int) -> float:
    from camtool.batch.pipeline import run_batch
    from camtool.settings import load_settings

    settings = load_settings(
        None,
        {
            "cam": {"output_dir": out},
            "runtime": {"batch_size": batch, "workers": workers, "device": "cpu"},
        },
    )
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    report = run_batch([photos], settings, model_path=ckpt, overwrite=True)
    seconds = time.perf_counter() - started
    if report.exit_code != 0:
        raise SystemExit(f"batch-cam failed for {ckpt}")
    if report.ok == 0:
        raise SystemExit(f"batch-cam explained nothing with {ckpt}")
    return report.ok / seconds


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and print a table (Markdown with ``--markdown``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--archs", default=",".join(DEFAULT_ARCHS))
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)

    from batch_cam import make_photos

    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    with tempfile.TemporaryDirectory(prefix="camtool-archs-") as tmp:
        work = Path(tmp)
        make_photos(work / "photos", args.images)
        described = {arch: _describe(arch, work) for arch in archs}
        speeds: dict[str, list[float]] = {arch: [] for arch in archs}
        for round_ in range(args.rounds):
            for arch in archs:
                speed = _images_per_second(
                    described[arch][0], work / "photos", work / "out", args.batch_size, args.workers
                )
                speeds[arch].append(speed)
                print(f"round {round_ + 1}: {arch} {speed:.1f} img/s", file=sys.stderr)
    header = "| arch | parameters | map at 160 px | with output_stride 16 | batch-cam img/s |"
    print(header)
    print("|---|---|---|---|---|")
    for arch in archs:
        _, params, native, half = described[arch]
        median = statistics.median(speeds[arch])
        print(f"| `{arch}` | {params / 1e6:.1f} M | {native} | {half} | {median:.1f} |")


if __name__ == "__main__":
    main()
