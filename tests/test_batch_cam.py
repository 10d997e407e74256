"""Tests for ``camtool batch-cam``: inputs, outputs, manifest, resume, shards, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from camtool.batch.inputs import (
    InputItem,
    assign_outputs,
    discover_inputs,
    parse_shard,
    select_shard,
)
from camtool.batch.manifest import MANIFEST_CSV, MANIFEST_JSONL, ManifestWriter, read_rows
from camtool.batch.pipeline import run_batch
from camtool.cli import app
from camtool.core.checkpoint import save_checkpoint
from camtool.core.maps import explain_batch
from camtool.core.runner import ModelInfo
from camtool.core.upsample import CellGeometry, resnet_geometry
from camtool.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, CamtoolError, ConfigError
from camtool.explain.files import CamOptions, map_paths, write_maps
from camtool.settings import load_settings

CLASSES = ["cat", "dog", "bird"]
#: The keys of ``batch-cam --json`` (README, batch-cam section).
JSON_KEYS = {
    *("total", "ok", "skipped", "failed", "elapsed_s", "images_per_s", "shard", "model"),
    *("device", "output_dir", "manifest", "manifest_csv", "gallery", "settings_file"),
    *("labelled", "top1", "exit_code"),
}
REPO = Path(__file__).resolve().parents[1]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 3-class ResNet-18 checkpoint at 64 px (small photos get maps of 2 x 3 cells)."""
    from camtool.core.model import CAMNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, CAMNet("resnet18", 3), class_names=CLASSES, img_size=64)
    return path


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _good_folder(root: Path, count: int = 6) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        path = sub / f"img{i}.jpg"
        _noise(40, 30, seed=i).save(path)
        paths.append(path)
    return paths


def _messy_folder(base: Path) -> dict[str, Any]:
    """Every kind of awkward input; returns what the tests expect of each."""
    photos = base / "in" / "photos"
    (photos / "a").mkdir(parents=True)
    (photos / "sub").mkdir()
    (photos / "with space").mkdir()
    (photos / ".cache").mkdir()
    expect: dict[str, Any] = {"ok": {}, "error": {}, "absent": []}

    def ok(rel: str, size: tuple[int, int]) -> None:
        expect["ok"][rel] = size

    Image.new("L", (40, 30), 128).save(photos / "gray.png")
    ok("gray.png", (40, 30))
    Image.new("RGBA", (40, 30), (255, 0, 0, 100)).save(photos / "rgba.png")
    ok("rgba.png", (40, 30))
    palette = Image.new("P", (40, 30), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.save(photos / "palette.png", transparency=0)
    ok("palette.png", (40, 30))
    Image.new("CMYK", (40, 30), (0, 128, 128, 0)).save(photos / "cmyk.jpg")
    ok("cmyk.jpg", (40, 30))
    deep = np.linspace(0, 65535, 30 * 40).astype(np.uint16).reshape(30, 40)
    Image.fromarray(deep).save(photos / "deep16.png")
    assert Image.open(photos / "deep16.png").mode.startswith("I")
    ok("deep16.png", (40, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    _noise(40, 30).save(photos / "rotated.jpg", exif=exif)
    ok("rotated.jpg", (30, 40))
    _noise(44, 30, 1).save(photos / "a" / "x.jpg")
    ok("a/x.jpg", (44, 30))
    _noise(36, 30, 2).save(photos / "a" / "x.png")
    ok("a/x.png", (36, 30))
    _noise(40, 32, 3).save(photos / "with space" / "ünï 猫.jpg")
    ok("with space/ünï 猫.jpg", (40, 32))
    _noise(40, 30, 4).save(photos / "sub" / "deep.jpg")
    ok("sub/deep.jpg", (40, 30))
    os.symlink("..", photos / "sub" / "loop")  # a link loop: sub/loop -> photos

    (photos / "empty.jpg").write_bytes(b"")
    expect["error"]["empty.jpg"] = "empty file"
    _noise(64, 64, 5).save(photos / "truncated.jpg", quality=95)
    data = (photos / "truncated.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(data[: len(data) // 2])
    expect["error"]["truncated.jpg"] = "truncated"
    (photos / "text.jpg").write_text("this is not a picture\n")
    expect["error"]["text.jpg"] = "not an image"
    Image.new("RGB", (400, 300), (0, 90, 0)).save(photos / "bomb.png")
    expect["error"]["bomb.png"] = "too large"

    _noise(40, 30).save(photos / ".hidden.jpg")
    _noise(40, 30).save(photos / ".cache" / "cached.jpg")
    (photos / "readme.txt").write_text("not an input when walking\n")
    expect["absent"] += [".hidden.jpg", ".cache/cached.jpg", "readme.txt"]

    other = base / "in2" / "photos"  # a second input folder with the same name
    other.mkdir(parents=True)
    _noise(40, 30, 6).save(other / "gray.png")
    notes = base / "in2" / "notes.txt"  # named explicitly: an input, though not an image
    notes.write_text("plain text\n")
    drawing = base / "in2" / "drawing.svg"
    drawing.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    expect.update(photos=photos, other=other, notes=notes, drawing=drawing)
    return expect


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            st = path.lstat()
            found[str(path)] = (st.st_size, st.st_mtime_ns)
    return found


def _invoke(args: list[str], **kwargs: Any) -> Any:
    return CliRunner().invoke(app, args, **kwargs)


def _rows(out: Path) -> dict[str, dict[str, Any]]:
    return {row["path"]: row for row in read_rows(out / MANIFEST_JSONL)}


def _counts(summary: dict[str, Any]) -> tuple[int, int, int, int]:
    """``(total, ok, skipped, failed)`` of a ``--json`` summary."""
    return summary["total"], summary["ok"], summary["skipped"], summary["failed"]


def _gallery_counts(out: Path) -> dict[str, str]:
    """The counts in the header of ``out/index.html``."""
    import re

    page = (out / "index.html").read_text(encoding="utf-8")
    return dict(
        (key, value) for value, key in re.findall(r'<b id="count-\w+">(\d+)</b> (\w+)', page)
    )


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".") and ".tmp" in p.name]


# -- the messy folder -------------------------------------------------------------------------


def test_messy_folder(tmp_path: Path, model_file: Path) -> None:
    expect = _messy_folder(tmp_path)
    photos, other = expect["photos"], expect["other"]
    before = _snapshot(tmp_path / "in") | _snapshot(tmp_path / "in2")
    out = tmp_path / "out"
    args = [str(photos), str(other), str(expect["notes"]), str(expect["drawing"])]
    result = _invoke(
        [
            "batch-cam",
            *args,
            *("-m", str(model_file), "-o", str(out), "-j", "0", "-b", "4"),
            *("--max-pixels", "50000", "--json"),
        ]
    )
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    assert _counts(summary) == (17, 11, 0, 6)
    assert set(summary) == JSON_KEYS  # the schema documented in the README, nothing else
    assert summary["exit_code"] == 3 and summary["shard"] is None
    assert summary["elapsed_s"] == round(summary["elapsed_s"], 1)
    assert len(f"{summary['images_per_s']:g}".replace(".", "").lstrip("0")) <= 3
    rows = _rows(out)
    assert len(rows) == 17

    for rel, size in expect["ok"].items():
        row = rows[str(photos / rel)]
        assert row["status"] == "ok", row
        overlay = out / row["output"]
        assert row["output"].startswith("photos/")
        assert overlay.suffix == ".jpg"
        with Image.open(overlay) as image:
            assert image.size == size, rel  # the image's own (oriented) resolution
        width, height = size
        x, y = row["peak"]
        assert 0 <= x < width and 0 <= y < height
        x0, y0, x1, y1 = row["box"]
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert row["pred_name"] == CLASSES[row["pred_idx"]]
        assert row["class_idx"] == row["pred_idx"]
        assert 0 < row["prob"] <= 1 and row["prob"] == round(row["prob"], 4)
    for rel, reason in expect["error"].items():
        row = rows[str(photos / rel)]
        assert row["status"] == "error" and reason in row["error"], row
        assert row["output"] is None
        assert not row["error"].startswith(str(photos))  # a plain reason; the path is in `path`
    for named in ("notes", "drawing"):
        assert "not an image" in rows[str(expect[named])]["error"]
    for rel in expect["absent"]:
        assert str(photos / rel) not in rows
    assert not any("/loop/" in path for path in rows)  # the link loop was not followed round

    # Same-stem inputs and same-name input folders get distinct outputs.
    outputs = [row["output"] for row in rows.values() if row["output"]]
    assert len(set(outputs)) == len(outputs)
    assert rows[str(other / "gray.png")]["output"].startswith("photos-2/")
    assert {rows[str(photos / "a" / n)]["output"] for n in ("x.jpg", "x.png")} == {
        "photos/a/x.jpg_overlay.jpg",
        "photos/a/x.png_overlay.jpg",
    }
    assert (out / "photos" / "with space" / "ünï 猫_overlay.jpg").is_file()

    # Per-input errors go to stderr, one line each; stdout holds the JSON only.
    assert result.stderr.count("camtool: error:") == 6
    assert "empty file" in result.stderr
    # The CSV, the gallery and the settings are there; nothing was written in the inputs.
    csv_lines = (out / MANIFEST_CSV).read_text(encoding="utf-8").splitlines()
    assert len(csv_lines) == 18 and csv_lines[0].startswith("path,output,status,error")
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "Failures (6)" in page and "empty file" in page
    assert (out / "camtool-settings.toml").is_file()
    after = _snapshot(tmp_path / "in") | _snapshot(tmp_path / "in2")
    assert after == before
    assert not _temp_files(out)


# -- exit codes, summary, quiet ---------------------------------------------------------------


def test_all_ok_exits_0_with_summary(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _good_folder(tmp_path / "pics")
    monkeypatch.chdir(tmp_path)
    result = _invoke(["batch-cam", "pics", "-m", str(model_file), "-o", "out", "-j", "0"])
    assert result.exit_code == 0, result.output
    for word in ("ok", "skipped", "failed", "images/s", "out/manifest.jsonl"):
        assert word in result.stdout
    assert (tmp_path / "out" / "pics" / "a" / "img1_overlay.jpg").is_file()
    # Settings are saved beside the outputs.
    assert 'output_dir = "out"' in (tmp_path / "out" / "camtool-settings.toml").read_text()


def test_quiet_prints_only_errors(tmp_path: Path, model_file: Path) -> None:
    _good_folder(tmp_path / "pics", 2)
    (tmp_path / "pics" / "bad.jpg").write_bytes(b"")
    result = _invoke(
        [
            "batch-cam",
            str(tmp_path / "pics"),
            *("-m", str(model_file), "-o", str(tmp_path / "out"), "-j", "0", "-q"),
        ]
    )
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"camtool: error: {tmp_path / 'pics' / 'bad.jpg'}: empty file"
    ]


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda t, m: [str(t / "pics"), "-m", str(t / "missing.pt")], "checkpoint not found"),
        (lambda t, m: [str(t / "empty"), "-m", str(m)], "no images found"),
        (lambda t, m: [str(t / "pics"), "-m", str(m), "-o", str(t / "pics" / "o")], "inside"),
        (lambda t, m: [str(t / "pics"), "-m", str(m), "--class", "zebra"], "unknown class"),
    ],
)
def test_nothing_can_run_exits_nonzero_with_one_line(
    tmp_path: Path,
    model_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_args: Callable[[Path, Path], list[str]],
    message: str,
) -> None:
    _good_folder(tmp_path / "pics", 1)
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    result = _invoke(["batch-cam", *make_args(tmp_path, model_file), "-j", "0"])
    assert result.exit_code in (1, 2), result.output
    if message != "unknown class":
        assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("camtool: error:") and message in lines[0]
    assert not (tmp_path / "pics" / "o").exists()


@pytest.mark.parametrize("spec", ["2/2", "x", "1/0", "-1/3", "1"])
def test_bad_shard_is_refused(tmp_path: Path, model_file: Path, spec: str) -> None:
    _good_folder(tmp_path / "pics", 1)
    result = _invoke(["batch-cam", str(tmp_path / "pics"), "-m", str(model_file), "--shard", spec])
    assert result.exit_code == 2
    assert "--shard" in result.stderr and result.stderr.count("\n") == 1
    with pytest.raises(ConfigError):
        parse_shard(spec)


# -- resume, overwrite, interrupts ------------------------------------------------------------


def test_rerun_skips_done_and_redoes_missing(tmp_path: Path, model_file: Path) -> None:
    _good_folder(tmp_path / "pics", 8)
    out = tmp_path / "out"
    base = ["batch-cam", str(tmp_path / "pics"), "-m", str(model_file), "-o", str(out)]
    base += ["-j", "0", "-b", "3", "--json"]
    assert _invoke(base).exit_code == 0
    rows = list(read_rows(out / MANIFEST_JSONL))
    assert len(rows) == 8
    # Simulate a run killed part-way: two outputs gone, the last row lost, a row cut short.
    (out / rows[0]["output"]).unlink()
    (out / rows[1]["output"]).unlink()
    lines = (out / MANIFEST_JSONL).read_bytes().splitlines(keepends=True)
    (out / MANIFEST_JSONL).write_bytes(b"".join(lines[:-1]) + lines[-1][:25])
    untouched = {r["output"]: (out / r["output"]).stat().st_mtime_ns for r in rows[2:-1]}

    result = _invoke(base)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert _counts(summary) == (8, 3, 5, 0)
    for output, mtime in untouched.items():
        assert (out / output).stat().st_mtime_ns == mtime  # not redone
    final = list(read_rows(out / MANIFEST_JSONL))
    assert len(final) == 8  # compacted: one row per input, the cut line dropped
    # Each input keeps its result: the earlier ok rows stay ok, unchanged.
    assert {r["status"] for r in final} == {"ok"}
    kept = {r["path"]: r for r in rows[2:-1]}
    assert all(r == kept[r["path"]] for r in final if r["path"] in kept)
    csv_lines = (out / MANIFEST_CSV).read_text().splitlines()
    assert len(csv_lines) == 9 and sum(",ok," in line for line in csv_lines) == 8
    assert _gallery_counts(out) == {"ok": "8", "failed": "0", "total": "8"}

    again = json.loads(_invoke(base).stdout)
    assert _counts(again) == (8, 0, 8, 0)
    assert {r["status"] for r in read_rows(out / MANIFEST_JSONL)} == {"ok"}
    assert _gallery_counts(out)["ok"] == "8"
    redo = json.loads(_invoke([*base, "--overwrite"]).stdout)
    assert _counts(redo) == (8, 8, 0, 0)
    # A different output format is not "done" yet.
    png = json.loads(_invoke([*base, "--format", "png"]).stdout)
    assert png["ok"] == 8
    assert not _temp_files(out)


def test_interrupt_saves_manifest_and_resumes(tmp_path: Path, model_file: Path) -> None:
    _good_folder(tmp_path / "pics", 9)
    out = tmp_path / "out"
    settings = load_settings(
        None, {"cam": {"output_dir": out}, "runtime": {"workers": 0, "batch_size": 2}}
    )
    seen: list[tuple[int, int, Any]] = []

    def stop_after_three(done: int, total: int, row: Any) -> None:
        seen.append((done, total, row))
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(CamtoolError) as info:
        run_batch(
            [tmp_path / "pics"], settings, model_path=model_file, on_progress=stop_after_three
        )
    assert info.value.exit_code == EXIT_INTERRUPTED
    assert (
        "interrupted" in info.value.message and "run the same command again" in info.value.message
    )
    assert seen[0] == (0, 9, None)
    done = list(read_rows(out / MANIFEST_JSONL))
    assert 3 <= len(done) < 9 and all(r["status"] == "ok" for r in done)
    assert (out / "index.html").is_file() and (out / MANIFEST_CSV).is_file()
    assert not _temp_files(out)

    report = run_batch([tmp_path / "pics"], settings, model_path=model_file)
    assert report.skipped == len(done) and report.ok == 9 - len(done) and report.exit_code == 0


def test_sigterm_stops_cleanly(tmp_path: Path, model_file: Path) -> None:
    _good_folder(tmp_path / "pics", 300)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "camtool", "batch-cam", str(tmp_path / "pics")]
    cmd += ["-m", str(model_file), "-o", str(out), "-j", "1", "-b", "1", "--format", "png"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    manifest = out / MANIFEST_JSONL
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.is_file() and manifest.stat().st_size > 0:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_TERMINATED, stderr
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0], lines
    assert stdout == b""
    rows = list(read_rows(manifest))
    assert 1 <= len(rows) < 300
    assert not _temp_files(out)
    for row in rows:
        with Image.open(out / row["output"]) as image:
            image.load()  # every listed output is complete


# -- stdin, shards, options -------------------------------------------------------------------


def test_paths_from_stdin(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _good_folder(tmp_path / "pics", 3)
    odd = tmp_path / "pics" / "b" / "café au lait.png"
    _noise(40, 30).save(odd)
    monkeypatch.chdir(tmp_path)
    lines = [str(p.relative_to(tmp_path)) for p in paths] + ["", str(odd), "pics/b/img0.jpg"]
    result = _invoke(
        ["batch-cam", "-", "-m", str(model_file), "-o", "out", "-j", "0", "--json"],
        input="\n".join(lines) + "\n",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] == 4  # duplicate line listed once
    rows = _rows(tmp_path / "out")
    assert rows["pics/a/img1.jpg"]["output"] == "pics/a/img1_overlay.jpg"
    # Absolute but inside the current folder: mirrored the same way as a relative path.
    assert rows[str(odd)]["output"] == "pics/b/café au lait_overlay.jpg"


def test_shards_are_disjoint_and_cover_everything(tmp_path: Path, model_file: Path) -> None:
    _good_folder(tmp_path / "pics", 10)
    out = tmp_path / "out"
    base = ["batch-cam", str(tmp_path / "pics"), "-m", str(model_file), "-o", str(out)]
    base += ["-j", "0", "--json"]
    shard_rows = []
    for index in range(3):
        before = set(_rows(out)) if out.exists() else set()
        result = _invoke([*base, "--shard", f"{index}/3"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["shard"] == f"{index}/3"
        new = set(_rows(out)) - before
        assert len(new) == summary["total"] == summary["ok"]
        shard_rows.append(new)
    assert sum(len(s) for s in shard_rows) == 10
    assert set().union(*shard_rows) == set(_rows(out))
    assert len(list(read_rows(out / MANIFEST_JSONL))) == 10  # one shared manifest


def test_figure_arrays_topk_class_and_workers(tmp_path: Path, model_file: Path) -> None:
    _good_folder(tmp_path / "pics", 4)
    out = tmp_path / "out"
    common = ["batch-cam", str(tmp_path / "pics"), "-m", str(model_file), "-j", "2", "--json"]
    result = _invoke([*common, "-o", str(out), "--topk", "2", "--save-array", "--format", "png"])
    assert result.exit_code == 0, result.output
    row = _rows(out)[str(tmp_path / "pics" / "a" / "img1.jpg")]
    assert row["outputs"] == [
        "pics/a/img1_top1_overlay.png",
        "pics/a/img1_top1.npz",
        "pics/a/img1_top2_overlay.png",
        "pics/a/img1_top2.npz",
    ]
    with np.load(out / "pics/a/img1_top1.npz") as arrays:
        assert arrays["heatmap"].shape == (30, 40)
        assert int(arrays["class_idx"]) == row["pred_idx"]

    fig = tmp_path / "fig"
    result = _invoke([*common, "-o", str(fig), "--figure", "--class", "DOG"])
    assert result.exit_code == 0, result.output
    row = _rows(fig)[str(tmp_path / "pics" / "a" / "img1.jpg")]
    assert row["output"] == "pics/a/img1_cam.png" and row["class_idx"] == 1
    with Image.open(fig / row["output"]) as image:
        assert image.width > 40 * 4  # three panels, not the bare overlay


# -- peak and box in original pixels ----------------------------------------------------------


class _HotSpot:
    """A fake runner whose every map is hot in one cell of a 4x4 grid.

    Its cells tile the 32x64 input of a 2:1 image: 8 x 16 pixels each, centred in their tile.
    """

    device = torch.device("cpu")

    def __init__(self) -> None:
        geometry = CellGeometry((8, 16), (3.5, 7.5))
        self.info = ModelInfo(class_names=CLASSES, img_size=32, geometry=geometry)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = images.shape[0]
        cams = torch.zeros(n, 3, 4, 4)
        cams[:, :, 0, 3] = 10.0  # row 0, column 3: top right
        logits = torch.tensor([[0.0, 2.0, 1.0]]).repeat(n, 1)
        return logits, cams


def test_peak_and_box_are_in_original_pixels(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    _noise(400, 200).save(tmp_path / "pics" / "wide.png")
    settings = load_settings(None, {"cam": {"output_dir": tmp_path / "out"}})
    report = run_batch([tmp_path / "pics"], settings, runner=_HotSpot(), fmt="png")
    assert report.ok == 1
    (row,) = read_rows(tmp_path / "out" / MANIFEST_JSONL)
    assert row["pred_idx"] == 1 and row["pred_name"] == "dog"
    x, y = row["peak"]
    assert 300 <= x < 400 and 0 <= y < 50  # the top-right quarter cell, in 400x200 pixels
    x0, y0, x1, y1 = row["box"]
    assert x1 == 400 and y0 == 0 and 250 < x0 < 320 and 40 < y1 < 110


# -- inputs and names (no model) --------------------------------------------------------------


def test_input_discovery_rules(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "deep" / "er").mkdir(parents=True)
    for rel in ("a.jpg", "A.PNG", "b.txt", ".h.jpg", "deep/er/c.jpeg", "deep/x.webp"):
        (root / rel).write_bytes(b"x")
    os.symlink(root, root / "deep" / "er" / "back")
    os.symlink(tmp_path / "nowhere.jpg", root / "broken.jpg")
    items = discover_inputs([root, root / "a.jpg"], tmp_path / "out")
    names = [Path(item.path).relative_to(root).as_posix() for item in items]
    assert names == ["A.PNG", "a.jpg", "broken.jpg", "deep/x.webp", "deep/er/c.jpeg"]
    assign_outputs(items)
    bases = [item.base for item in items]
    assert bases[:2] == ["photos/A.PNG", "photos/a.jpg"]  # same stem, any case: full names
    assert bases[3] == "photos/deep/x"
    with pytest.raises(CamtoolError, match="inside input folder"):
        discover_inputs([tmp_path], tmp_path / "out")
    with pytest.raises(CamtoolError, match="inside the output folder"):
        discover_inputs([root], tmp_path)
    (item,) = discover_inputs([root / "a.jpg"], root)
    assert item.error is not None and "inside the output folder" in item.error


def test_clashing_names_stay_distinct() -> None:
    items = [InputItem(p, tuple(p.split("/"))) for p in ("d/x.jpg", "d/x.png", "d/x.jpg.png")]
    items += [InputItem("/e/x.jpg", ("x.jpg",)), InputItem("/f/x.jpg", ("x.jpg",))]
    assign_outputs(items)
    assert [i.base for i in items] == ["d/x.jpg", "d/x.png", "d/x.jpg-2", "x.jpg", "x.jpg-2"]
    shards = [select_shard(items, i, 2) for i in range(2)]
    assert sorted(i.base for s in shards for i in s) == sorted(i.base for i in items)


def test_output_tree_does_not_depend_on_how_the_path_is_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "photos" / "sub"
    (sub / "deep").mkdir(parents=True)
    for rel in ("a.jpg", "deep/b.png"):
        (sub / rel).write_bytes(b"x")
    os.symlink(sub, tmp_path / "link")
    (tmp_path / "elsewhere" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)

    def bases(*specs: str | Path) -> list[str]:
        items = discover_inputs(list(specs), tmp_path / "out")
        assign_outputs(items)
        return [item.base for item in items]

    for spec in ("photos/sub", "./photos/sub/", sub, "link", "photos/../photos/sub"):
        assert bases(spec) == ["photos/sub/a", "photos/sub/deep/b"], spec
    for spec in ("photos/sub/a.jpg", "./photos/sub/a.jpg", sub / "a.jpg", "link/a.jpg"):
        assert bases(spec) == ["photos/sub/a"], spec
    # Outside the current folder an input keeps only its name, however it is typed.
    monkeypatch.chdir(tmp_path / "elsewhere")
    for spec in ("../photos/sub", sub, "../link"):
        assert bases(spec) == ["sub/a", "sub/deep/b"], spec
    assert bases("../photos/sub/a.jpg") == ["a"]
    # Two folders with the same name: the second one given gets "-2".
    assert bases("sub", "../photos/sub") == ["sub-2/a", "sub-2/deep/b"]  # "sub" has no images
    assert bases("../photos/sub", "sub") == ["sub/a", "sub/deep/b"]


def test_resume_finds_work_done_under_another_spelling_of_the_path(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _good_folder(tmp_path / "pics", 3)
    monkeypatch.chdir(tmp_path)
    base = ["-m", str(model_file), "-o", "out", "-j", "0", "--json"]
    first = json.loads(_invoke(["batch-cam", "pics", *base]).stdout)
    again = json.loads(_invoke(["batch-cam", str(tmp_path / "pics"), *base]).stdout)
    assert _counts(first) == (3, 3, 0, 0) and _counts(again) == (3, 0, 3, 0)
    redo = json.loads(_invoke(["batch-cam", "./pics", *base, "--overwrite"]).stdout)
    assert _counts(redo) == (3, 3, 0, 0)
    rows = list(read_rows(tmp_path / "out" / MANIFEST_JSONL))
    assert sorted(r["path"] for r in rows) == [
        "pics/a/img1.jpg",
        "pics/b/img0.jpg",
        "pics/b/img2.jpg",
    ]
    assert len({r["output"] for r in rows}) == 3  # one row per output


class _Recorder:
    """Runs a real model and remembers the shape of every batch it was given."""

    def __init__(self, model: Path) -> None:
        from camtool.core.loading import open_runner

        self.runner = open_runner(model, torch.device("cpu"))
        self.info = self.runner.info
        self.device = self.runner.device
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.shapes.append(tuple(images.shape))
        result: tuple[torch.Tensor, torch.Tensor] = self.runner(images)
        return result


def test_map_does_not_depend_on_the_batch(tmp_path: Path) -> None:
    from camtool.core.model import CAMNet

    torch.manual_seed(0)
    model = tmp_path / "m64.pt"
    save_checkpoint(model, CAMNet("resnet18", 3), class_names=CLASSES, img_size=64)
    alone, mixed = tmp_path / "alone", tmp_path / "mixed"
    alone.mkdir()
    _noise(100, 64, seed=1).save(alone / "target.png")  # input 96 x 64: a 3 x 2 map
    (mixed / "more").mkdir(parents=True)
    _noise(100, 64, seed=1).save(mixed / "target.png")
    sizes = [(92, 64), (104, 66), (90, 62), (120, 64), (64, 100), (200, 64), (64, 64)]
    for i, size in enumerate(sizes):
        _noise(*size, seed=10 + i).save(mixed / "more" / f"other{i}.png")
    results = {}
    for folder in (alone, mixed):
        out = tmp_path / f"out-{folder.name}"
        settings = load_settings(
            None, {"cam": {"output_dir": out}, "runtime": {"workers": 0, "batch_size": 8}}
        )
        recorder = _Recorder(model)
        report = run_batch([folder], settings, runner=recorder, fmt="png", save_array=True)
        assert report.failed == 0
        results[folder.name] = (np.load(out / folder.name / "target.npz"), recorder.shapes)
    one, many = results["alone"][0], results["mixed"][0]
    assert results["alone"][1] == [(1, 3, 64, 96)]
    shapes = results["mixed"][1]
    assert (4, 3, 64, 96) in shapes  # target.png shared its batch with three others
    assert all(h % 32 == 0 and w % 32 == 0 for _n, _c, h, w in shapes)
    assert sum(n for n, *_ in shapes) == 8 and len(shapes) == 5  # 8 images, 5 input sizes
    assert one["cam"].shape == (2, 3)  # the feature grid tiles the 96 x 64 input exactly
    np.testing.assert_allclose(many["cam"], one["cam"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(many["logits"], one["logits"], rtol=0, atol=1e-5)
    assert many["heatmap"].shape == (64, 100)  # returned at the image's own resolution


def test_manifest_append_survives_a_cut_line(tmp_path: Path) -> None:
    writer = ManifestWriter(tmp_path)
    writer.append({"path": "a", "status": "ok"})
    with open(tmp_path / MANIFEST_JSONL, "ab") as handle:
        handle.write(b'{"path": "b", "sta')
    writer.append({"path": "c", "status": "ok"})
    assert [r["path"] for r in read_rows(tmp_path / MANIFEST_JSONL)] == ["a", "c"]


def test_a_skip_recorded_as_a_status_by_earlier_versions_reads_as_ok(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_JSONL).write_text(
        '{"path": "a.jpg", "output": "a_overlay.jpg", "status": "skipped"}\n', encoding="utf-8"
    )
    assert [r["status"] for r in read_rows(tmp_path / MANIFEST_JSONL)] == ["ok"]


def test_map_paths_names_what_write_maps_writes(tmp_path: Path) -> None:
    class Net:
        def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.randn(images.shape[0], 3), torch.rand(images.shape[0], 3, 2, 2)

    info = ModelInfo(class_names=CLASSES, img_size=32, geometry=resnet_geometry(16))
    image = _noise(20, 10)
    batch = explain_batch(Net(), torch.zeros(1, 3, 32, 64), topk=2)
    for options in (
        CamOptions(topk=2, figure=False, save_array=True, fmt="jpg"),
        CamOptions(topk=2, figure=True),
    ):
        heats: list[tuple[int, tuple[int, ...]]] = []

        def remember(k: int, heat: np.ndarray, heats: list[Any] = heats) -> None:
            heats.append((k, heat.shape))

        written = write_maps(
            image,
            batch,
            0,
            tmp_path / "s",
            info,
            options,
            on_heatmap=remember,
        )
        assert written == map_paths(tmp_path / "s", options, 2)
        assert heats == [(0, (10, 20)), (1, (10, 20))]


class _Broken(_HotSpot):
    """A fake runner that fails on images wider than they are tall."""

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.shape[3] > images.shape[2]:
            raise RuntimeError("shape not supported\nmore detail")
        return super().__call__(images)


class _Flat(_HotSpot):
    """A fake runner whose maps have one cell: nothing to localize."""

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, _ = super().__call__(images)
        return logits, torch.full((images.shape[0], 3, 1, 1), 5.0)


def test_a_flat_map_has_no_peak_and_no_box(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    _noise(40, 30).save(tmp_path / "pics" / "small.png")
    settings = load_settings(None, {"cam": {"output_dir": tmp_path / "out"}})
    report = run_batch([tmp_path / "pics"], settings, runner=_Flat(), fmt="png")
    assert report.ok == 1
    (row,) = read_rows(tmp_path / "out" / MANIFEST_JSONL)
    assert row["status"] == "ok" and row["peak"] is None and row["box"] is None


def test_a_failing_batch_fails_its_images_only(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    _noise(60, 30).save(tmp_path / "pics" / "wide.png")
    _noise(30, 60).save(tmp_path / "pics" / "tall.png")
    settings = load_settings(None, {"cam": {"output_dir": tmp_path / "out"}})
    report = run_batch([tmp_path / "pics"], settings, runner=_Broken(), fmt="png")
    assert (report.ok, report.failed, report.exit_code) == (1, 1, 3)
    rows = _rows(tmp_path / "out")
    assert rows[str(tmp_path / "pics" / "wide.png")]["error"] == "model failed: shape not supported"


def _crash(path: str) -> Any:
    os._exit(1)  # a decoder that takes its worker process down with it


def test_a_decoding_worker_that_dies_ends_the_run_in_one_line() -> None:
    from camtool.batch.inputs import read_images

    with pytest.raises(CamtoolError, match="^reading images failed: a decoding worker died$"):
        list(read_images(_crash, ["a.jpg", "b.jpg"], workers=1))


def test_the_command_lets_waiting_openmp_threads_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    import camtool.cli as cli

    seen: list[str | None] = []
    monkeypatch.setattr(cli, "app", lambda: seen.append(os.environ.get("OMP_WAIT_POLICY")))
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    cli.main()
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's own choice is kept
    cli.main()
    assert seen == ["PASSIVE", "ACTIVE"]
