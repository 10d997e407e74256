"""How fast ``camtool batch-cam`` streams a folder compared with the floor; is memory flat?

On one folder of photo-like 320x240 JPEGs and one model (a ResNet-18 checkpoint, 10 classes,
img_size 160) it measures, each in a fresh subprocess:

* **floor** -- decode + preprocess in batch-cam's decoding workers, batch, forward: no CAM,
  no drawing, no writing. The best a batch tool could do on this machine.
* **batch** -- :func:`camtool.batch.pipeline.run_batch` end to end: CAMs, overlays (JPEG), peak
  and box, manifest, CSV and gallery.

Both use the same workers, batch size and model, and warm the model up on one batch first. It
reports images/s, the ratio batch/floor, each with and without channels-last memory on the CPU,
and the peak RSS (``ru_maxrss``) of ``batch`` at two folder sizes (it should not grow with the
folder).

**Mixed sizes** (``--mixed N``): N crops of scikit-image's sample photos shaped like
Imagenette-160's (shorter side 160 px, longer side 160 to 350 px, a fifth of them portrait), and
the same crops resized to one size with the same mean pixel count. ``batch-cam`` runs on each
folder in turn, in fresh processes with no warm-up (first calls count), ``--mixed-repeat``
times; it reports the median images/s of each, their ratio (target >= 0.85), and the slowest
mixed run in multiples of the uniform median (target <= 3). With ``--unsnapped`` it also runs
the mixed folder with model inputs of the exact aspect ratio (each image its own size: how
batch-cam worked before inputs were rounded to multiples of the output stride). With
``--eval`` it measures eval's uncropped localization pass the same way.

Usage (from the repository root)::

    .venv/bin/python benchmarks/batch_cam.py [--workdir /tmp/camtool-batch-bench]
        [--small 200] [--large 2000] [--workers 2] [--batch-size 32] [--repeat 2]
        [--mixed 96 --mixed-repeat 5 --unsnapped --eval --only-mixed]
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

from camtool.cli import OPENMP_DEFAULTS  # noqa: E402 (after the path set-up)

__all__ = ["main", "make_mixed_photos", "make_photos", "run_child"]

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


_SAMPLES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "retina",
    "hubble_deep_field",
    "colorwheel",
    "camera",
)


def _sample_photos() -> list[Image.Image]:
    """scikit-image's bundled sample photos, as RGB images (no download)."""
    import skimage.data

    photos = []
    for name in _SAMPLES:
        pixels = getattr(skimage.data, name)()
        photos.append(Image.fromarray(pixels).convert("RGB"))
    return photos


def make_mixed_photos(mixed: Path, uniform: Path, count: int, seed: int = 0) -> tuple[int, int]:
    """Write ``count`` Imagenette-160-like crops to ``mixed``, the same at one size to ``uniform``.

    Each crop is a random region of a sample photo, resized to a shorter side of 160 px and a
    longer side drawn from 160..350 px (portrait for a fifth of them). The uniform copies have
    the size ``(W, 160)`` whose pixel count is the mixed crops' mean.

    Returns:
        The uniform size ``(W, 160)``.
    """
    rng = np.random.default_rng(seed)
    sizes = []
    for _ in range(count):
        long = int(rng.integers(160, 351))
        sizes.append((long, 160) if rng.random() >= 0.2 else (160, long))
    uniform_size = (round(sum(w * h for w, h in sizes) / len(sizes) / 160), 160)
    if (mixed / "done").is_file() and (uniform / "done").is_file():
        return uniform_size
    photos = _sample_photos()
    for folder in (mixed, uniform):
        folder.mkdir(parents=True, exist_ok=True)
    for i, (width, height) in enumerate(sizes):
        photo = photos[i % len(photos)]
        scale = rng.uniform(0.5, 1.0) * min(photo.width / width, photo.height / height)
        cw, ch = width * scale, height * scale
        x0, y0 = rng.uniform(0, photo.width - cw), rng.uniform(0, photo.height - ch)
        crop = photo.resize((width, height), Image.Resampling.BILINEAR, (x0, y0, x0 + cw, y0 + ch))
        crop.save(mixed / f"photo_{i:04d}.jpg", quality=90)
        crop.resize(uniform_size, Image.Resampling.BILINEAR).save(
            uniform / f"photo_{i:04d}.jpg", quality=90
        )
    for folder in (mixed, uniform):
        (folder / "done").write_text("ok\n")
    return uniform_size


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

    from camtool.batch.inputs import Reader, read_images
    from camtool.data.images import IMAGE_SUFFIXES

    paths = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    info = runner.info
    reader = Reader(info.img_size, info.mean, info.std, None, info.output_stride)
    done = 0
    pending: list[np.ndarray] = []

    def forward() -> None:
        x = torch.from_numpy(np.stack(pending)).to(runner.device)
        if runner.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            runner.model(x)
        pending.clear()

    for decoded in read_images(reader, paths, workers):
        assert not isinstance(decoded, str), decoded
        pending.append(decoded.tensor)
        done += 1
        if len(pending) == batch_size:
            forward()
    if pending:
        forward()
    return done


def _localization(folder: Path, runner: Any, workers: int, batch_size: int) -> int:
    """eval's uncropped localization pass over every image (one box each); return how many."""
    from camtool.core.localize import BoxXYXY
    from camtool.data.boxes import GroundTruth, GtBox
    from camtool.evaluation.localization import run_localization

    paths = sorted(folder.glob("*.jpg"))
    box = BoxXYXY(0, 0, 80, 80)
    gt = GroundTruth(folder, by_path={str(p.resolve()): [GtBox(box, p.name)] for p in paths})
    with torch_inference():
        found = run_localization(
            runner,
            [(p, 0) for p in paths],
            gt,
            batch_size=batch_size,
            workers=workers,
            max_pixels=None,
            progress=None,
        )
    assert found["skipped"] == 0, found
    return int(found["n_images"])


def torch_inference() -> Any:
    """``torch.inference_mode()``, imported late (the parent process never imports torch)."""
    import torch

    return torch.inference_mode()


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this (fresh) process."""
    from camtool.batch.pipeline import run_batch
    from camtool.settings import load_settings

    runner = _runner(args.model, args.channels_last)
    if args.unsnapped:
        runner.info.output_stride = 1  # each image keeps its exact aspect ratio: its own size
    if not args.cold:
        _warm_up(runner, args.batch_size)
    started = time.perf_counter()
    if args.mode == "floor":
        images = _floor(args.folder, runner, args.workers, args.batch_size)
    elif args.mode == "loc":
        images = _localization(args.folder, runner, args.workers, args.batch_size)
    else:
        shutil.rmtree(args.out, ignore_errors=True)
        settings = load_settings(
            None,
            {
                "cam": {"output_dir": args.out},
                "runtime": {"workers": args.workers, "batch_size": args.batch_size},
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
    mode: str,
    folder: Path,
    model: Path,
    out: Path,
    ns: argparse.Namespace,
    cl: bool,
    extra: tuple[str, ...] = (),
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
    cmd += extra
    env = {**OPENMP_DEFAULTS, **os.environ}  # as the camtool command runs
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
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
    parser.add_argument("--mixed", type=int, default=96, help="Photos of the mixed-size folder.")
    parser.add_argument("--mixed-repeat", type=int, default=5, help="Runs per mixed-size variant.")
    parser.add_argument("--unsnapped", action="store_true", help="Also run exact-aspect inputs.")
    parser.add_argument("--eval", action="store_true", help="Also measure eval's localization.")
    parser.add_argument("--only-mixed", action="store_true", help="Skip floor and memory runs.")
    parser.add_argument("--child", choices=("floor", "batch", "loc"), help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
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
    report: dict[str, Any] = {"cpus": os.cpu_count(), "workers": ns.workers}
    report["batch_size"] = ns.batch_size
    model = _model(work)
    if ns.mixed:
        report["mixed_sizes"] = _mixed_report(work, model, ns)
    if not ns.only_mixed:
        report.update(_floor_and_memory(work, model, ns))
    print(json.dumps(report, indent=2))
    return 0


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _mixed_report(work: Path, model: Path, ns: argparse.Namespace) -> dict[str, Any]:
    """Mixed-size folder vs the same photos at one size, side by side (see the docstring)."""
    mixed, uniform = work / f"mixed_{ns.mixed}", work / f"uniform_{ns.mixed}"
    size = make_mixed_photos(mixed, uniform, ns.mixed)
    out = work / "out_mixed"
    variants: dict[str, tuple[Path, tuple[str, ...]]] = {
        "uniform": (uniform, ()),
        "mixed": (mixed, ()),
    }
    if ns.unsnapped:
        variants["mixed_unsnapped"] = (mixed, ("--unsnapped",))
    modes = ["batch", "loc"] if ns.eval else ["batch"]
    runs: dict[str, list[float]] = {f"{m}_{v}": [] for m in modes for v in variants}
    for _ in range(ns.mixed_repeat):
        for mode in modes:
            for name, (folder, extra) in variants.items():
                result = _spawn(mode, folder, model, out, ns, True, ("--cold", *extra))
                print(json.dumps({"variant": name, **result}), file=sys.stderr)
                runs[f"{mode}_{name}"].append(result["seconds"])
    summary: dict[str, Any] = {"photos": ns.mixed, "uniform_size": list(size)}
    for mode in modes:
        base = _median(runs[f"{mode}_uniform"])
        for name in variants:
            seconds = runs[f"{mode}_{name}"]
            summary[f"{mode}_{name}"] = {
                "images_per_s_median": round(ns.mixed / _median(seconds), 2),
                "seconds": seconds,
                "ratio_vs_uniform": round(base / _median(seconds), 3),
                "slowest_vs_uniform_median": round(max(seconds) / base, 2),
            }
    return summary


def _floor_and_memory(work: Path, model: Path, ns: argparse.Namespace) -> dict[str, Any]:
    """batch-cam vs its floor (with and without channels-last) and peak memory at two sizes."""
    small, large = work / f"photos_{ns.small}", work / f"photos_{ns.large}"
    t0 = time.perf_counter()
    make_photos(large, ns.large)
    make_photos(small, ns.small)
    print(f"photos ready in {time.perf_counter() - t0:.1f} s ({work})", file=sys.stderr)
    out = work / "out"
    report: dict[str, Any] = {}
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
    return report


if __name__ == "__main__":
    sys.exit(main())
