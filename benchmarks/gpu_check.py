"""The measuring half of ``benchmarks/gpu_check.sh``: the CUDA path, end to end, in one table.

On one generated shapes dataset (the demo's generator) and one set of photo-like JPEGs it runs,
each as a user would, and prints one table (stdout; progress lines on stderr):

* **train**: ``benchmarks/train_throughput.py`` -- camtool's loop (AMP + channels-last on CUDA)
  vs the bare PyTorch loop on the same data; images/s and the ratio (aim: >= 0.95).
* **torchrun**: ``torchrun --nproc_per_node 1 -m camtool train`` (NCCL on CUDA): images/s of its
  last epoch, and that it wrote ``best.pt``.
* **eval**: ``camtool eval`` of that ``best.pt`` (classification, localization with the
  dataset's boxes, faithfulness); images/s of the whole command.
* **export**: ``camtool export`` of ``best.pt`` to ONNX (the self-check included), then
  ``camtool cam`` on the ONNX file with ``--device``: which device onnxruntime used.
* **batch-cam**: ``run_batch`` end to end vs its floor (decode + preprocess in workers, batch,
  forward at the same precision; no maps, no drawing, no writing); images/s and the ratio.

Run: ``python benchmarks/gpu_check.py [--device cuda] [--quick]`` (``--quick``: tiny sizes, for
a CPU smoke run of the script itself).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for folder in (REPO, BENCH):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

Row = tuple[str, str, str, str]

#: The measurements, in the order they run, and their names in the table.
STEPS = {
    "train": "train: camtool vs bare loop",
    "torchrun": "torchrun --nproc_per_node 1",
    "eval": "eval",
    "export": "export + cam on the ONNX file",
    "batch": "batch-cam vs floor",
}


def note(message: str) -> None:
    """A plain progress line on stderr."""
    print(f"gpu_check: {message}", file=sys.stderr, flush=True)


#: When the whole measurement must be over (``time.monotonic()``); set by :func:`main`.
DEADLINE = [float("inf")]


def run(command: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[str, float]:
    """Run ``command``; its stdout and wall seconds. A failure is raised with its stderr's tail.

    The timeout is cut to what is left before the deadline.
    """
    timeout = min(timeout, DEADLINE[0] - time.monotonic())
    if timeout <= 1:
        raise TimeoutError("no time left before the deadline")
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"{' '.join(command[:4])} ... exited {done.returncode}: {tail}")
    return done.stdout, seconds


def camtool(*args: str) -> list[str]:
    return [sys.executable, "-m", "camtool", *args]


def check_train(args: argparse.Namespace, data: Path) -> Row:
    """camtool's loop vs the bare loop of train_throughput.py, on the same data."""
    out, _ = run(
        [
            *(sys.executable, str(BENCH / "train_throughput.py"), "--device", args.device),
            *("--data-dir", str(data), "--image-size", str(args.image_size)),
            *("--batch-size", str(args.batch_size), "--epochs", "2", "--rounds", str(args.rounds)),
            *("--holdout", str(args.holdout), "--workers", str(args.workers), "--json"),
        ],
        timeout=args.budget,
    )
    report = json.loads(out)
    return (
        "train: camtool loop (AMP, channels-last) vs bare loop",
        f"{report['camtool_images_per_s']:.0f} img/s",
        f"{report['bare_images_per_s']:.0f} img/s",
        f"{report['ratio']:.3f}",
    )


def check_torchrun(args: argparse.Namespace, data: Path, folder: Path) -> tuple[Row, Path]:
    """One-process torchrun training; returns its row and its best.pt."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    out, seconds = run(
        [
            *(torchrun, "--nproc_per_node", "1", "-m", "camtool", "train", "--no-pretrained"),
            *("--data-dir", str(data), "--img-size", str(args.image_size), "--epochs", "2"),
            *("--batch-size", str(args.batch_size), "--workers", str(args.workers)),
            *("--device", args.device, "--checkpoint-dir", str(folder), "--json", "--quiet"),
        ],
        timeout=args.budget,
        env={**os.environ, "CAMTOOL_DATASET__NAME": "folder", "CAMTOOL_DATASET__VAL_SIZE": "20"},
    )
    report = json.loads(out)
    rate = report["history"][-1]["images_per_s"]
    best = folder / "best.pt"
    return (
        "torchrun --nproc_per_node 1 camtool train",
        f"{rate:.0f} img/s",
        f"{seconds:.0f} s for 2 epochs",
        "ok" if best.is_file() else "NO best.pt",
    ), best


def check_eval(args: argparse.Namespace, data: Path, model: Path, out_dir: Path) -> Row:
    out, seconds = run(
        camtool(
            *("eval", "--model", str(model), "--data-dir", str(data), "--device", args.device),
            *("--metrics", "all", "--faithfulness-images", str(args.faithfulness)),
            *("-o", str(out_dir), "--workers", str(args.workers), "--json", "--quiet"),
        ),
        timeout=args.budget,
        env={**os.environ, "CAMTOOL_DATASET__NAME": "folder"},
    )
    report = json.loads(out)
    images = report["classification"]["n_images"]
    return (
        "eval: classification + localization + faithfulness",
        f"{images / seconds:.1f} img/s",
        f"{images} images in {seconds:.1f} s",
        f"top-1 {report['classification']['top1']:.2f}",
    )


def check_export(args: argparse.Namespace, model: Path, photo: Path, folder: Path) -> Row:
    onnx = folder / "model.onnx"
    out, seconds = run(camtool("export", "--model", str(model), "-o", str(onnx), "--json"), 300)
    report = json.loads(out)
    worst = max(s["cams_max_diff"] for s in report["samples"])
    cam_out, cam_seconds = run(
        camtool(
            *("cam", str(photo), "--model", str(onnx), "--device", args.device),
            *("-o", str(folder / "cam"), "--json"),
        ),
        timeout=120,
    )
    device = json.loads(cam_out)["device"]
    return (
        f"export ONNX + cam --device {args.device}",
        f"{seconds:.1f} s export",
        f"cam {cam_seconds:.2f} s on onnxruntime {device}",
        f"max |diff| {worst:.1e}",
    )


def batch_floor(runner: Any, photos: Path, workers: int, batch_size: int) -> float:
    """Images/s of decode + preprocess (workers) + batch + forward: no maps, no writing."""
    import numpy as np
    import torch

    from camtool.batch.inputs import Reader, read_images
    from camtool.data.images import IMAGE_SUFFIXES

    paths = sorted(str(p) for p in photos.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    info = runner.info
    reader = Reader(info.img_size, info.mean, info.std, None, info.output_stride)
    pending: list[Any] = []
    started = time.perf_counter()
    for decoded in read_images(reader, paths, workers):
        assert not isinstance(decoded, str), decoded
        pending.append(decoded.tensor)
        if len(pending) == batch_size:  # make_photos draws one size: they stack
            runner(np.stack(pending))
            pending.clear()
    if pending:
        runner(np.stack(pending))
    if runner.torch_device.type == "cuda":
        torch.cuda.synchronize()
    return len(paths) / (time.perf_counter() - started)


def check_batch_cam(args: argparse.Namespace, folder: Path) -> Row:
    import torch
    from batch_cam import make_photos

    from camtool.batch.pipeline import run_batch
    from camtool.core.checkpoint import save_checkpoint
    from camtool.core.loading import open_runner
    from camtool.core.model import CAMNet
    from camtool.settings import load_settings

    photos = folder / "photos"
    make_photos(photos, args.photos)
    model = folder / "photos_model.pt"
    torch.manual_seed(0)
    save_checkpoint(model, CAMNet("resnet18", 10), class_names=list("abcdefghij"), img_size=160)
    runner: Any = open_runner(model, args.device, amp=True)
    runner(torch.zeros(args.batch_size, 3, 160, 213))  # warm-up
    floor = batch_floor(runner, photos, args.workers, args.batch_size)
    settings = load_settings(
        None,
        {
            "cam": {"output_dir": str(folder / "maps")},
            "runtime": {"workers": args.workers, "batch_size": args.batch_size},
        },
    )
    started = time.perf_counter()
    report = run_batch([photos], settings, runner=runner, fmt="jpg")
    rate = report.ok / (time.perf_counter() - started)
    return (
        f"batch-cam ({report.ok} photos, {runner.device})",
        f"{rate:.0f} img/s",
        f"floor {floor:.0f} img/s",
        f"{rate / floor:.3f}",
    )


def untrained_model(data: Path, path: Path, image_size: int) -> Path:
    """A randomly initialised checkpoint for the classes of ``data`` (when training is skipped)."""
    import torch

    from camtool.core.checkpoint import save_checkpoint
    from camtool.core.model import CAMNet

    names = sorted(p.name for p in (data / "train").iterdir() if p.is_dir())
    torch.manual_seed(0)
    save_checkpoint(path, CAMNet("resnet18", len(names)), class_names=names, img_size=image_size)
    return path


def print_table(rows: list[Row], tests: str) -> None:
    header: Row = ("check", "result", "reference", "ratio / note")
    rows = [header, *rows, ("pytest -m cuda", tests, "", "")]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for n, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * width for width in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run on a CPU")
    parser.add_argument("--tests", default="not run", help="the pytest summary, for the table")
    parser.add_argument(
        "--deadline", type=float, default=270.0, help="seconds for all measurements together"
    )
    parser.add_argument(
        "--steps",
        default=",".join(STEPS),
        help=f"comma-separated subset of {', '.join(STEPS)} (default: all)",
    )
    args = parser.parse_args(argv)
    DEADLINE[0] = time.monotonic() + args.deadline
    chosen = [step.strip() for step in args.steps.split(",") if step.strip()]
    unknown = set(chosen) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}")
    quick = args.quick
    args.image_size = 32 if quick else 128
    args.batch_size = 8 if quick else 64
    args.per_class = 12 if quick else 160
    args.holdout = 20
    args.rounds = 1 if quick else 2
    args.workers = 0 if quick else min(8, os.cpu_count() or 1)
    args.photos = 16 if quick else 512
    args.faithfulness = 8 if quick else 64
    args.budget = 240
    from camtool.data.synthetic import make_shapes_dataset

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="camtool-gpu-check-") as tmp:
        work = Path(tmp)
        note(f"generating shapes ({args.per_class}/class, {args.image_size} px) in {work}")
        data = make_shapes_dataset(
            work / "shapes",
            train_per_class=args.per_class,
            val_per_class=4 if quick else 40,
            image_size=args.image_size,
        )
        best: list[Path] = []

        def torchrun_step() -> None:
            row, path = check_torchrun(args, data, work / "ck")
            rows.append(row)
            best.append(path)

        def model() -> Path:
            """torchrun's best.pt, or (that step not chosen) an untrained model of the data."""
            if not best:
                best.append(untrained_model(data, work / "untrained.pt", args.image_size))
            return best[0]

        photo = next((data / "val").rglob("*.png"))
        steps = {
            "train": lambda: rows.append(check_train(args, data)),
            "torchrun": torchrun_step,
            "eval": lambda: rows.append(check_eval(args, data, model(), work / "ev")),
            "export": lambda: rows.append(check_export(args, model(), photo, work)),
            "batch": lambda: rows.append(check_batch_cam(args, work)),
        }
        for name in chosen:
            note(f"{STEPS[name]} ...")
            started = time.perf_counter()
            try:
                steps[name]()
            except Exception as exc:  # one failed check must not hide the others
                rows.append((STEPS[name], "FAILED", str(exc)[:120], ""))
            note(f"{STEPS[name]} done in {time.perf_counter() - started:.0f} s")
    print_table(rows, args.tests)
    return 1 if any(row[1] == "FAILED" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
