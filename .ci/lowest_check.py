"""Run by ``nox -s lowest``: camtool works with the lowest dependency versions it admits.

Arguments: the ``name==version`` pins the session installed. Checks that each is the version
installed, that the CLI starts, turns a usage error into one line with exit code 2 and prints
its settings, and that a tiny checkpoint is exported to ONNX and explained through it (torch,
NumPy, Pillow, matplotlib, onnx and onnxruntime all take part).
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.version import Version


def camtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["camtool", *args], capture_output=True, text=True, check=False)


def ok(*args: str) -> str:
    done = camtool(*args)
    if done.returncode != 0:
        sys.exit(f"camtool {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def main(pins: list[str]) -> None:
    for pin in pins:
        name, version = pin.split("==")
        installed = importlib.metadata.version(name)
        if Version(installed) != Version(version):
            sys.exit(f"{name} {installed} is installed, not the floor {version}")
    ok("--help")
    bad = camtool("train", "--optimizer", "rmsprop")
    if bad.returncode != 2 or len(bad.stderr.splitlines()) != 1:
        sys.exit(f"a usage error is not one line with exit code 2: {bad}")
    json.loads(ok("config", "--json"))
    import numpy as np
    import torch
    from PIL import Image

    from camtool.core.checkpoint import save_checkpoint
    from camtool.core.model import CAMNet

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        torch.manual_seed(0)
        save_checkpoint(root / "m.pt", CAMNet("resnet18", 2), class_names=["a", "b"], img_size=32)
        pixels = np.random.default_rng(0).integers(0, 256, (36, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "photo.png")
        ok("export", "-m", str(root / "m.pt"), "-o", str(root / "m.onnx"))
        report = json.loads(
            ok(
                "cam",
                str(root / "photo.png"),
                "-m",
                str(root / "m.onnx"),
                "-o",
                str(root / "cams"),
                "--json",
            )
        )
        if not any((root / "cams").iterdir()):
            sys.exit(f"cam wrote no file: {report}")
    print("lowest versions work:", " ".join(pins))


if __name__ == "__main__":
    main(sys.argv[1:])
