"""Reading images: orientation, every colour mode, and plain reasons for bad files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from camtool.data.images import load_image, preprocess, resized_size
from camtool.errors import InputError


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    image.save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "r.jpg").size == (20, 40)


@pytest.mark.parametrize(
    ("mode", "value"),
    [("L", 128), ("CMYK", (0, 0, 0, 0)), ("I;16", 65535), ("1", 1)],
)
def test_modes_become_rgb(tmp_path: Path, mode: str, value: int | tuple[int, ...]) -> None:
    suffix = ".jpg" if mode == "CMYK" else ".png"
    Image.new(mode, (8, 6), value).save(tmp_path / f"x{suffix}")
    image = load_image(tmp_path / f"x{suffix}")
    assert image.mode == "RGB" and image.size == (8, 6)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    Image.new("I;16", (4, 4), 32768).save(tmp_path / "g.png")
    assert abs(int(np.asarray(load_image(tmp_path / "g.png"))[0, 0, 0]) - 128) <= 1


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "t.png")
    assert np.asarray(load_image(tmp_path / "t.png")).min() == 255
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "p.png", transparency=0)
    assert np.asarray(load_image(tmp_path / "p.png")).min() == 255


def test_bad_files_get_plain_reasons(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:200])
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    cases = {
        "missing.jpg": "no such file",
        "empty.jpg": "empty file",
        "text.jpg": "not an image",
        "cut.jpg": "corrupt or truncated",
        "big.png": "too large",
    }
    for name, reason in cases.items():
        with pytest.raises(InputError, match=reason):
            load_image(tmp_path / name, max_pixels=5000)


def test_preprocess_keeps_aspect_and_normalises() -> None:
    image = Image.new("RGB", (300, 150), (124, 116, 104))
    tensor = preprocess(image, 32, (124 / 255, 116 / 255, 104 / 255), (0.5, 0.5, 0.5))
    assert tensor.shape == (3, 32, 64)
    assert torch.allclose(tensor, torch.zeros_like(tensor), atol=1e-2)
    assert resized_size(150, 300, 32) == (32, 64)


def test_extreme_aspect_is_capped() -> None:
    assert resized_size(1, 1000, 160) == (2, 1600)  # not 160 x 160000
    assert resized_size(4000, 100, 160) == (1600, 40)
