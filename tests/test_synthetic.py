"""Tests of the synthetic shapes dataset and of box-file reading."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from camtool.core.localize import BoxXYXY
from camtool.data.boxes import BOXES_HEADER, read_csv_boxes
from camtool.data.synthetic import SHAPES, make_shapes_dataset
from camtool.errors import ConfigError, InputError

SIZE = 48


def _make(root: Path, seed: int = 0, **kwargs: Any) -> Path:
    args: dict[str, Any] = {
        "train_per_class": 4,
        "val_per_class": 2,
        "image_size": SIZE,
        "seed": seed,
    }
    args.update(kwargs)
    return make_shapes_dataset(root, **args)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def read_boxes(path: Path, root: Path | None = None) -> dict[str, list[BoxXYXY]]:
    """The boxes of a box file by resolved image path (relative to ``root``, else its folder)."""
    truth = read_csv_boxes(path, path.parent if root is None else root)
    return {key: [entry.box for entry in entries] for key, entries in truth.by_path.items()}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes") / "ds"
    return make_shapes_dataset(root, train_per_class=30, val_per_class=2, image_size=64, seed=3)


def test_shapes_are_sorted_class_names() -> None:
    assert list(SHAPES) == sorted(SHAPES)
    assert 4 <= len(SHAPES) <= 5


def test_layout_classes_and_boxes_file(tmp_path: Path) -> None:
    root = _make(tmp_path / "ds", classes=("triangle", "circle", "square"))
    assert root == tmp_path / "ds"
    assert (root / "classes.txt").read_text().splitlines() == ["circle", "square", "triangle"]
    for split, count in (("train", 4), ("val", 2)):
        folders = sorted(p.name for p in (root / split).iterdir())
        assert folders == ["circle", "square", "triangle"]
        for name in folders:
            files = sorted((root / split / name).iterdir())
            assert len(files) == count
            assert all(f.suffix == ".png" for f in files)
            with Image.open(files[0]) as im:
                assert im.size == (SIZE, SIZE) and im.mode == "RGB"
    with open(root / "boxes.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == BOXES_HEADER
    paths = [r[0] for r in rows[1:]]
    assert len(paths) == len(set(paths)) == 3 * (4 + 2)
    assert all((root / p).is_file() for p in paths)
    assert not list(tmp_path.glob(".*"))  # no temporary folder left behind


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = _tree(_make(tmp_path / "a", seed=7))
    b = _tree(_make(tmp_path / "b", seed=7))
    c = _tree(_make(tmp_path / "c", seed=8))
    assert a == b
    assert a.keys() == c.keys()
    assert a["train/circle/00000.png"] != c["train/circle/00000.png"]
    assert a["boxes.csv"] != c["boxes.csv"]


def test_boxes_lie_inside_the_image_and_have_sensible_size(shapes: Path) -> None:
    boxes = read_boxes(shapes / "boxes.csv")
    assert all(len(v) == 1 for v in boxes.values())
    for (box,) in boxes.values():
        assert 0 <= box.x0 < box.x1 <= 64 and 0 <= box.y0 < box.y1 <= 64
        assert 8 <= box.x1 - box.x0 <= 40 and 8 <= box.y1 - box.y0 <= 40


def test_object_scale_sets_the_box_size(tmp_path: Path) -> None:
    # Radius r = 0.3 * 64 = 19.2 px: every shape's box spans at most 2r + 1 and, whatever its
    # rotation, at least r (a triangle's short side, from its apex to the opposite edge: 1.5r).
    root = _make(tmp_path / "big", object_scale=(0.3, 0.3))
    for (box,) in read_boxes(root / "boxes.csv").values():
        width, height = box.x1 - box.x0, box.y1 - box.y0
        assert 19 <= max(width, height) <= 40
        assert min(width, height) >= 19


def _far_from(pixels: np.ndarray, colour: np.ndarray, limit: float) -> np.ndarray:
    return np.abs(pixels - colour).sum(axis=-1) > limit


def test_boxes_enclose_the_drawn_shape(shapes: Path) -> None:
    """Inside the box many pixels differ from the background; the shape touches all four edges."""
    boxes = read_boxes(shapes / "boxes.csv", root=shapes)
    frame_hits, frame_pixels = 0, 0
    for key, (box,) in boxes.items():
        img = np.asarray(Image.open(key), dtype=np.float32)
        inside = np.zeros(img.shape[:2], dtype=bool)
        inside[box.y0 : box.y1, box.x0 : box.x1] = True
        background = np.median(img[~inside], axis=0)
        far = _far_from(img, background, 120)
        assert far[inside].mean() > 0.2, key
        assert far[inside].mean() > 3 * far[~inside].mean(), key
        # the object's colour is the commonest "far" colour in the box; it reaches every edge
        colour = np.median(img[inside & far], axis=0)
        near = ~_far_from(img, colour, 60)
        crop = near[box.y0 : box.y1, box.x0 : box.x1]
        assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any(), key
        # ... and, clutter apart, not into the one-pixel frame around the box
        frame = np.zeros_like(inside)
        frame[max(box.y0 - 1, 0) : box.y1 + 1, max(box.x0 - 1, 0) : box.x1 + 1] = True
        frame &= ~inside
        frame_hits += int(near[frame].sum())
        frame_pixels += int(frame.sum())
    assert frame_hits < 0.01 * frame_pixels  # a box one pixel too small gives about 0.045


def test_progress_is_reported_for_every_image(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    _make(tmp_path / "ds", classes=("ring", "cross"), progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 12) for i in range(1, 13)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"train_per_class": 0},
        {"val_per_class": 0},
        {"image_size": 16},
        {"classes": ("circle", "hexagon")},
        {"classes": ("circle", "circle")},
        {"classes": ("circle",)},
        {"object_scale": (0.0, 0.2)},
        {"object_scale": (0.3, 0.2)},
        {"object_scale": (0.2, 0.4)},
    ],
)
def test_bad_arguments_raise_config_error(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        _make(tmp_path / "ds", **kwargs)
    assert not (tmp_path / "ds").exists()


def test_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="mine"):
        _make(root)
    assert (root / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_replaces_an_empty_folder_and_an_earlier_dataset(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    _make(root, train_per_class=5)
    assert (root / "train/circle/00004.png").is_file()
    _make(root, train_per_class=2)
    assert not (root / "train/circle/00004.png").exists()
    assert len(read_boxes(root / "boxes.csv")) == len(SHAPES) * (2 + 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_boxes_good_file(tmp_path: Path) -> None:
    text = (
        "\ufeffPath, y0 ,x0,x1,y1,label\n"
        "a.png,1,2,10,11,dog\n"
        "\n"
        "sub/b.jpg,0,0,5,5,cat\n"
        "a.png,3.5,4.2,7.1,9,dog\n"
    )
    path = _write(tmp_path / "boxes.csv", text)
    assert read_boxes(path, root=tmp_path / "imgs") == {
        str((tmp_path / "imgs" / "a.png").resolve()): [BoxXYXY(2, 1, 10, 11), BoxXYXY(4, 3, 8, 9)],
        str((tmp_path / "imgs" / "sub" / "b.jpg").resolve()): [BoxXYXY(0, 0, 5, 5)],
    }


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", None, "empty"),
        ("path,x0,y0,x1\na.png,1,2,3\n", 1, "y1"),
        ("a.png,1,2,3,4\n", 1, "header"),
        ("path,x0,y0,x1,y1\na.png,0,0,4,4\nb.png,1,2,3\n", 3, "columns"),
        ("path,x0,y0,x1,y1\na.png,0,zero,4,4\n", 2, "not a number"),
        ("path,x0,y0,x1,y1\na.png,0,0,nan,4\n", 2, "finite"),
        ("path,x0,y0,x1,y1\na.png,-1,0,4,4\n", 2, ">= 0"),
        ("path,x0,y0,x1,y1\n\na.png,5,0,5,4\n", 3, "x1 > x0"),
        ("path,x0,y0,x1,y1\na.png,0,6,4,2\n", 2, "y1 > y0"),
        ("path,x0,y0,x1,y1\n ,0,0,4,4\n", 2, "empty path"),
    ],
)
def test_read_boxes_malformed(tmp_path: Path, text: str, line: int | None, words: str) -> None:
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(InputError) as info:
        read_boxes(path)
    message = str(info.value)
    assert str(path) in message and words in message
    if line is not None:
        assert f"line {line}:" in message


def test_read_boxes_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.csv"):
        read_boxes(tmp_path / "nope.csv")


def test_shapes_sit_anywhere_inside_the_evaluation_crop(tmp_path: Path) -> None:
    from camtool.data.synthetic import EDGE_MARGIN

    root = _make(tmp_path / "spread", train_per_class=40, val_per_class=1)
    boxes = [box for (box,) in read_boxes(root / "boxes.csv").values()]
    crop_border = (SIZE * 1.14 - SIZE) / 2 / 1.14  # eval: resize to 1.14x, centre crop
    edge = SIZE * EDGE_MARGIN
    assert edge >= crop_border
    for box in boxes:  # the shape stays inside the margin (a pixel of antialiasing aside)
        assert min(box.x0, box.y0) >= edge - 1 and max(box.x1, box.y1) <= SIZE - edge + 1
    centres = np.array([((b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2) for b in boxes])
    # Not gathered at the centre: some shapes sit over a fifth of the side away from it.
    assert np.abs(centres - SIZE / 2).max() >= SIZE / 5
