"""How fast ``camtool batch-cam`` streams a folder compared with the floor; is memory flat?

On one folder of photo-like 320x240 JPEGs and one model (a ResNet-18 checkpoint, 10 classes,
img_size 160) it measures, each in a fresh subprocess:

* **floor** -- decode + preprocess in DataLoader workers, batch, forward (logits only): no CAM,
  no drawing, no writing. The best a batch tool could do on this machine.
* **batch** -- :func:`camtool.batch.pipeline.run_batch` end to end: CAMs, overlays (JPEG), peak and
box,
  manifest, CSV and gallery.

Both use the same workers, batch size and model, and warm the model up on one batch first. It
reports images/s, the ratio batch/floor, each with and without channels-last memory on the CPU,
and the peak RSS (``ru_maxrss``) of ``batch`` at two folder sizes (it should not grow with the
folder).

Usage (from the repository root)::

    .venv/bin/python benchmarks/batch_cam.py [--workdir /tmp/camtool-batch-bench]
        [--small 200] [--large 2000] [--workers 2] [--batch-size 32] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout where camtool is not installed
    sys.path.insert(0, str(REPO))

__all__ = ["main", "make_photos", "run_child"]

_SIZE = (320, 240)


def make_photos(folder: Path, count: int, seed: int = 0) -> None:
    """Write ``count`` photo-like JPEGs (gradients, blobs, texture) into ``folder``, once."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = _SIZE
    yy = np.mgrid[0:height, 0:width][0].astype(np.float32)
    for i in range(count):
        path = folder / f"sub{i % 10}" / f"photo_{i:05d}.jpg"
        if path.exists():
            continue
        path.parent.mkdir(exist_ok=True)
        top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = (yy / height)[..., None]
        sky = top * (1 - t) + bottom * t + rng.normal(0, 6, (height, width, 3))
        image = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(2, 6))):
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            r = rng.uniform(10, 60)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        image = image.filter(ImageFilter.GaussianBlur(1.2))
        image.save(path, quality=90)


def _model(workdir: Path) -> Path:
    import torch

    from camtool.core.checkpoint import save_checkpoint
    from camtool.core.model import CAMNet

    path = workdir / "resnet18_10.pt"
    if not path.exists():
        torch.manual_seed(0)
        names = [f"class_{i}" for i in range(10)]
        save_checkpoint(path, CAMNet("resnet18", 10), class_names=names, img_size=160)
    return path


def _runner(model: Path, channels_last: bool) -> Any:
    import torch

    from camtool.core.loading import open_runner

    runner: Any = open_runner(model, "cpu")
    if channels_last:
        runner.model = runner.model.to(memory_format=torch.channels_last)
        runner.channels_last = True
    return runner


def _warm_up(runner: Any, batch_size: int) -> None:
    import torch

    from camtool.core.maps import explain_batch

    explain_batch(runner, torch.zeros(batch_size, 3, 160, 213))


def _floor(folder: Path, runner: Any, workers: int, batch_size: int) -> int:
    """Decode, preprocess and forward every image (logits only); return how many."""
    import torch

    from camtool.batch.pipeline import _as_is, _ImageFiles
    from camtool.data.images import IMAGE_SUFFIXES

    paths = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    info = runner.info
    dataset = _ImageFiles(paths, info.img_size, info.mean, info.std, None)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        collate_fn=_as_is,
        prefetch_factor=2 if workers else None,
    )
    done = 0
    pending: list[np.ndarray] = []

    def forward() -> None:
        x = torch.from_numpy(np.stack(pending)).to(runner.device)
        if runner.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            runner.model(x)
        pending.clear()

    for _index, _original, tensor, error in loader:
        assert error is None, error
        pending.append(tensor)
        done += 1
        if len(pending) == batch_size:
            forward()
    if pending:
        forward()
    return done


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this (fresh) process."""
    from camtool.batch.pipeline import run_batch
    from camtool.settings import load_settings

    runner = _runner(args.model, args.channels_last)
    _warm_up(runner, args.batch_size)
    started = time.perf_counter()
    if args.mode == "floor":
        images = _floor(args.folder, runner, args.workers, args.batch_size)
    else:
        shutil.rmtree(args.out, ignore_errors=True)
        settings = load_settings(
            None,
            {
                "cam": {"output_dir": args.out},
                "training": {"workers": args.workers, "batch_size": args.batch_size},
            },
        )
        report = run_batch([args.folder], settings, runner=runner, fmt="jpg")
        images = report.ok
        assert report.failed == 0
    seconds = time.perf_counter() - started
    return {
        "mode": args.mode,
        "images": images,
        "seconds": round(seconds, 2),
        "images_per_s": round(images / seconds, 2),
        "channels_last": args.channels_last,
        "maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "children_maxrss_mib": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        ),
    }


def _spawn(
    mode: str, folder: Path, model: Path, out: Path, ns: argparse.Namespace, cl: bool
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--folder",
        str(folder),
        "--model",
        str(model),
    ]
    cmd += ["--out", str(out), "--workers", str(ns.workers), "--batch-size", str(ns.batch_size)]
    if cl:
        cmd.append("--channels-last")
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    """Generate the photos and the model if needed, run every measurement, print a report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/camtool-batch-bench"))
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2, help="Speed runs per variant (best kept).")
    parser.add_argument("--child", choices=("floor", "batch"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--channels-last", action="store_true", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.child:
        ns.mode = ns.child
        print(json.dumps(run_child(ns)))
        return 0

    work = ns.workdir
    small, large = work / f"photos_{ns.small}", work / f"photos_{ns.large}"
    t0 = time.perf_counter()
    make_photos(large, ns.large)
    make_photos(small, ns.small)
    model = _model(work)
    print(f"photos ready in {time.perf_counter() - t0:.1f} s ({work})", file=sys.stderr)
    out = work / "out"
    report: dict[str, Any] = {"cpus": os.cpu_count(), "workers": ns.workers}
    report["batch_size"] = ns.batch_size
    for cl in (False, True):
        best: dict[str, dict[str, Any]] = {}
        for _ in range(ns.repeat):
            for mode in ("floor", "batch"):
                result = _spawn(mode, small, model, out, ns, cl)
                print(json.dumps(result), file=sys.stderr)
                if mode not in best or result["images_per_s"] > best[mode]["images_per_s"]:
                    best[mode] = result
        key = "channels_last" if cl else "contiguous"
        report[key] = {
            "floor_images_per_s": best["floor"]["images_per_s"],
            "batch_images_per_s": best["batch"]["images_per_s"],
            "ratio_batch_over_floor": round(
                best["batch"]["images_per_s"] / best["floor"]["images_per_s"], 3
            ),
        }
    memory = {}
    for count, folder in ((ns.small, small), (ns.large, large)):
        result = _spawn("batch", folder, model, out, ns, False)
        print(json.dumps(result), file=sys.stderr)
        memory[count] = result
    report["peak_rss_mib"] = {str(n): r["maxrss_mib"] for n, r in memory.items()}
    report["worker_peak_rss_mib"] = {str(n): r["children_maxrss_mib"] for n, r in memory.items()}
    small_rss, large_rss = memory[ns.small]["maxrss_mib"], memory[ns.large]["maxrss_mib"]
    report["rss_growth_pct"] = round(100 * (large_rss - small_rss) / small_rss, 1)
    report["large_run_images_per_s"] = memory[ns.large]["images_per_s"]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
