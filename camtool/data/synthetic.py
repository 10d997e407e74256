"""A small offline dataset of coloured shapes with known boxes, for ``camtool demo``.

Each image holds one bright shape (the class) at a random place, size, rotation and colour, on a
dark noisy background with distracting lines and dots. Layout: ``root/{train,val}/<class>/*.png``,
``root/classes.txt`` (one name a line, in class-index order) and ``root/boxes.csv``
(:data:`~camtool.data.boxes.BOXES_HEADER` columns, paths relative to root).
"""

from __future__ import annotations

import csv
import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from camtool.core.localize import BoxXYXY
from camtool.data.archive import replace_folder
from camtool.data.boxes import BOXES_HEADER
from camtool.errors import ConfigError, InputError
from camtool.fsutil import SCRATCH_PREFIX, remove_stale_temps

__all__ = [
    "DEFAULT_OBJECT_SCALE",
    "MIN_IMAGE_SIZE",
    "SHAPES",
    "make_shapes_dataset",
]

SHAPES: tuple[str, ...] = ("circle", "cross", "ring", "square", "triangle")
"""The shape classes, sorted (class-index order)."""

MIN_IMAGE_SIZE = 32
"""The smallest image side the generator accepts."""

DEFAULT_OBJECT_SCALE: tuple[float, float] = (0.15, 0.27)
"""Range of the radius of the circle around each shape, as a fraction of the image side."""

EDGE_MARGIN = 1 / 16
"""Least distance from a shape to the image edge, as a fraction of the side: keeps it inside
the eval centre crop (a 5.6% border). Antialiasing may reach a pixel further."""

_MARKER = ".camtool-shapes"
"""Marks a generated root; only such a root is replaced."""

RGB = tuple[int, int, int]


def make_shapes_dataset(
    root: Path,
    *,
    train_per_class: int = 200,
    val_per_class: int = 50,
    image_size: int = 64,
    seed: int = 0,
    classes: Sequence[str] = SHAPES,
    progress: Callable[[int, int], None] | None = None,
    object_scale: tuple[float, float] = DEFAULT_OBJECT_SCALE,
) -> Path:
    """Generate the shapes dataset under ``root`` and return ``root``.

    ``train_per_class`` and ``val_per_class`` square images of ``image_size`` pixels (at least
    :data:`MIN_IMAGE_SIZE`) for each of ``classes``; ``object_scale`` as
    :data:`DEFAULT_OBJECT_SCALE` (``0 < low <= high <= 0.35``); ``progress(done, total)`` after
    each image. Same arguments, same bytes. The tree is written beside ``root`` and moved into
    place; an existing ``root`` is replaced only if empty or generated.

    Raises:
        ConfigError: an argument out of range or an unknown class name.
        InputError: ``root`` exists, is not empty and is not a generated shapes dataset.
    """
    if train_per_class < 1 or val_per_class < 1:
        raise ConfigError("train_per_class and val_per_class must be at least 1")
    if image_size < MIN_IMAGE_SIZE:
        raise ConfigError(f"image_size must be at least {MIN_IMAGE_SIZE}, got {image_size}")
    unknown = [c for c in classes if c not in SHAPES]
    if unknown:
        raise ConfigError(f"unknown shape {unknown[0]!r}; choose from {', '.join(SHAPES)}")
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise ConfigError("classes must name at least two different shapes")
    low, high = object_scale
    if not 0 < low <= high <= 0.35:
        raise ConfigError(f"object_scale must satisfy 0 < low <= high <= 0.35, got {object_scale}")
    names = sorted(classes)
    root = Path(root)
    generated = root.is_dir() and (not any(root.iterdir()) or (root / _MARKER).is_file())
    if root.exists() and not generated:
        raise InputError(
            f"{root} exists and is not a camtool shapes dataset; choose an empty or new folder"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    total = len(names) * (train_per_class + val_per_class)
    remove_stale_temps(root.parent)  # the scratch folders of runs killed before
    tmp = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX + "shapes-", dir=root.parent))
    try:
        rows: list[tuple[str, int, int, int, int]] = []
        for split, count in (("train", train_per_class), ("val", val_per_class)):
            for name in names:
                (tmp / split / name).mkdir(parents=True)
                for i in range(count):
                    image, box = _render(rng, name, image_size, object_scale)
                    rel = f"{split}/{name}/{i:05d}.png"
                    image.save(tmp / rel, format="PNG", compress_level=1)
                    rows.append((rel, box.x0, box.y0, box.x1, box.y1))
                    if progress is not None:
                        progress(len(rows), total)
        with open(tmp / "boxes.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(BOXES_HEADER)
            writer.writerows(rows)
        (tmp / "classes.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
        (tmp / _MARKER).write_text(f"seed={seed} image_size={image_size}\n", encoding="utf-8")
        replace_folder(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _render(
    rng: np.random.Generator, shape: str, size: int, scale: tuple[float, float]
) -> tuple[Image.Image, BoxXYXY]:
    """One image of ``shape`` and the shape's tight bounding box."""
    background = _colour(rng, high=100)
    colour = _bright_colour(rng)
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):  # distractors: thin lines and small dots
        x0, y0, x1, y1 = (float(v) for v in rng.uniform(0, size, 4))
        draw.line((x0, y0, x1, y1), fill=_colour(rng), width=1)
    for _ in range(int(rng.integers(3, 9))):
        cx, cy = (float(v) for v in rng.uniform(0, size, 2))
        r = float(rng.uniform(0.8, 1.8))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_colour(rng))
    mask = Image.new("L", (size, size), 0)
    _draw_shape(ImageDraw.Draw(mask), rng, shape, size, scale)
    image.paste(colour, (0, 0, size, size), mask)
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0.0, 8.0, (size, size, 3))
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    bbox = mask.getbbox()
    assert bbox is not None  # every shape is at least a few pixels wide
    return image, BoxXYXY(*bbox)


def _colour(rng: np.random.Generator, high: int = 256) -> RGB:
    r, g, b = (int(v) for v in rng.integers(0, high, 3))
    return (r, g, b)


def _bright_colour(rng: np.random.Generator) -> RGB:
    """A colour with one strong channel and a high sum, well above the dark background."""
    while True:
        channels = rng.integers(0, 256, 3)
        channels[rng.integers(0, 3)] = rng.integers(200, 256)
        if channels.sum() >= 380:
            r, g, b = (int(v) for v in channels)
            return (r, g, b)


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    shape: str,
    size: int,
    scale: tuple[float, float],
) -> None:
    """A filled white ``shape`` on a mask, at a random place, size and rotation."""
    margin = size * EDGE_MARGIN
    r = float(rng.uniform(*scale)) * size  # radius of the circle around the shape
    cx, cy = (float(v) for v in rng.uniform(margin + r, size - margin - r, 2))
    turn = float(rng.uniform(0, 2 * math.pi))
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif shape == "ring":
        width = max(2, round(r / 3))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=255, width=width)
    elif shape in ("square", "triangle"):
        corners = 4 if shape == "square" else 3
        angles = [turn + 2 * math.pi * k / corners for k in range(corners)]
        draw.polygon([(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles], fill=255)
    elif shape == "cross":
        arm = r / 3.2  # half the width of a bar
        points: list[tuple[float, float]] = []
        for k in range(4):
            a = turn + k * math.pi / 2
            ux, uy, vx, vy = math.cos(a), math.sin(a), -math.sin(a), math.cos(a)
            for along, across in ((r, -arm), (r, arm), (arm, arm)):
                points.append((cx + along * ux + across * vx, cy + along * uy + across * vy))
        draw.polygon(points, fill=255)
    else:  # pragma: no cover - names are checked before drawing
        raise ConfigError(f"unknown shape {shape!r}")
