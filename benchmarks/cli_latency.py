"""How long does one ``camtool cam`` call on one photo take, next to ``import torch, torchvision``?

Scripts call ``for f in *.jpg; do camtool cam "$f" --model m.onnx; done``, so the time of one
whole call matters. This script times, side by side and interleaved in one run, the median wall
time of:

* ``python -c "import torch, torchvision"`` (the reference);
* ``camtool cam photo.jpg --model m.onnx`` (the figure, the default output);
* ``camtool cam photo.jpg --model m.onnx --overlay-only --json``;
* ``camtool cam photo.jpg --model m.pt`` (a checkpoint);
* the floor of the checkpoint call: ``import torch, torchvision`` + load the checkpoint + one
  forward pass of the photo, in one ``python -c``.

Targets (issue 10.2): the ONNX call <= 0.5x the import; the checkpoint call no slower than its
floor (printed as a ratio; a little above 1.0 is the CLI, settings and writing the figure).

The model is a randomly initialised ResNet-18 (3 classes, 160 px) saved and exported here; the
photo is scikit-image's astronaut (512 x 512). Progress goes to stderr, the table to stdout.

Run: ``python benchmarks/cli_latency.py [--runs 7]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FLOOR = """
import sys, torch, torchvision
from camtool.core.checkpoint import load_checkpoint
from camtool.data.images import load_image, preprocess
loaded = load_checkpoint(sys.argv[1])
model = loaded.model.eval()
image = load_image(sys.argv[2])
with torch.inference_mode():
    model.forward_cams(preprocess(image, loaded.img_size, loaded.mean, loaded.std)[None])
"""


def note(message: str) -> None:
    """A plain progress line on stderr."""
    print(f"cli_latency: {message}", file=sys.stderr, flush=True)


def make_models(folder: Path) -> tuple[Path, Path, Path]:
    """A tiny checkpoint, its ONNX export and a photo in ``folder``."""
    import torch
    from PIL import Image
    from skimage import data

    from camtool.core.checkpoint import save_checkpoint
    from camtool.core.model import CAMNet
    from camtool.export.exporter import export_model

    torch.manual_seed(0)
    checkpoint = folder / "model.pt"
    save_checkpoint(checkpoint, CAMNet("resnet18", 3), class_names=["a", "b", "c"], img_size=160)
    onnx = folder / "model.onnx"
    export_model(checkpoint, output=onnx)
    photo = folder / "photo.jpg"
    Image.fromarray(data.astronaut()).save(photo, quality=90)
    return checkpoint, onnx, photo


def commands(checkpoint: Path, onnx: Path, photo: Path, out: Path) -> dict[str, list[str]]:
    cam = [sys.executable, "-m", "camtool", "cam", str(photo), "-o", str(out)]
    return {
        "import torch, torchvision": [sys.executable, "-c", "import torch, torchvision"],
        "cam --model m.onnx": [*cam, "--model", str(onnx)],
        "cam --model m.onnx --overlay-only --json": [
            *cam,
            "--model",
            str(onnx),
            "--overlay-only",
            "--json",
        ],
        "cam --model m.pt": [*cam, "--model", str(checkpoint), "--device", "cpu"],
        "floor: import + load + forward": [
            sys.executable,
            "-c",
            FLOOR,
            str(checkpoint),
            str(photo),
        ],
    }


def time_once(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        note("making a checkpoint, its ONNX export and a photo")
        todo = commands(*make_models(folder), folder / "out")
        for command in todo.values():  # warm the file cache
            time_once(command, env)
        times: dict[str, list[float]] = {name: [] for name in todo}
        for run in range(args.runs):  # interleaved: the machine's load hits all alike
            for name, command in todo.items():
                times[name].append(time_once(command, env))
            note(f"run {run + 1}/{args.runs} done")
    medians = {name: statistics.median(values) for name, values in times.items()}
    reference = medians["import torch, torchvision"]
    floor = medians["floor: import + load + forward"]
    print(f"{'command':42s} {'median':>9s} {'x import':>9s} {'x floor':>8s}")
    for name, seconds in medians.items():
        print(
            f"{name:42s} {seconds * 1000:7.0f}ms {seconds / reference:9.2f} {seconds / floor:8.2f}"
        )


if __name__ == "__main__":
    main()
