"""One image per call: ``cam`` with an ONNX model imports no torch; paths and flags are checked
before any model is loaded; every command treats unreadable paths the same way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import typer
from PIL import Image
from typer.testing import CliRunner

from camtool.cli import app
from camtool.core.maps import explain_batch, heatmap, select_classes
from camtool.data.images import preprocess, preprocess_array
from camtool.explain.render import PANEL_WIDTH, colormap_lut, figure_png
from tests.conftest import TINY_CLASSES, make_photo

runner = CliRunner()
HEAVY = ("torch", "torchvision", "matplotlib")


def run_in_subprocess(
    args: list[str], cwd: Path, watch: tuple[str, ...] = HEAVY
) -> tuple[int, list[str], str, str]:
    """Run ``camtool ARGS`` in a new interpreter: (exit code, which of the ``watch`` modules it
    imported, out, err)."""
    code = (
        "import json, sys\nfrom camtool.cli import main\n"
        f"sys.argv = ['camtool', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        f"heavy = [m for m in {watch!r} if m in sys.modules]\n"
        "print('HEAVY', json.dumps(heavy), file=sys.stderr)\nsys.exit(code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )
    marker = [line for line in done.stderr.splitlines() if line.startswith("HEAVY ")]
    assert marker, done.stderr
    heavy = json.loads(marker[-1][len("HEAVY ") :])
    stderr = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("HEAVY "))
    return done.returncode, heavy, done.stdout, stderr


def test_cam_with_onnx_imports_neither_torch_nor_matplotlib(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    make_photo(tmp_path / "one.png", (64, 48))
    args = ["cam", "one.png", "--model", str(tiny_onnx), "-o", "out"]
    code, heavy, stdout, stderr = run_in_subprocess(args, tmp_path)
    assert code == 0, stderr
    assert heavy == []
    figure = Image.open(tmp_path / "out" / "one_cam.png")
    assert figure.format == "PNG" and figure.width > 3 * PANEL_WIDTH
    code, heavy, stdout, stderr = run_in_subprocess(
        [*args, "--overlay-only", "--save-array", "--json"], tmp_path
    )
    assert code == 0 and heavy == [], stderr
    doc = json.loads(stdout)
    assert doc["device"] == "cpu" and doc["images"][0]["topk"][0]["name"] in TINY_CLASSES
    assert Image.open(tmp_path / "out" / "one_overlay.png").size == (64, 48)
    assert np.load(tmp_path / "out" / "one.npz")["heatmap"].shape == (48, 64)


def test_batch_cam_with_onnx_imports_no_torch(tiny_onnx: Path, tmp_path: Path) -> None:
    for i in range(3):
        make_photo(tmp_path / "pics" / f"{i}.png", (48 + 8 * i, 40), seed=i)
    (tmp_path / "pics" / "broken.png").write_bytes(b"not a png")
    args = ["batch-cam", "pics", "--model", str(tiny_onnx), "-o", "out", "-j", "2", "--json"]
    code, heavy, stdout, stderr = run_in_subprocess(args, tmp_path, ("torch",))
    assert code == 3 and heavy == [], stderr  # the broken file fails alone
    doc = json.loads(stdout)
    assert (doc["ok"], doc["failed"], doc["device"]) == (3, 1, "cpu")
    with Image.open(tmp_path / "out" / "pics" / "1_overlay.jpg") as overlay:
        assert overlay.size == (56, 40)


def test_plain_cam_skips_the_box_code_that_only_json_shows(tmp_path: Path) -> None:
    from camtool.core.checkpoint import save_checkpoint
    from camtool.core.model import CAMNet

    torch.manual_seed(0)
    model = save_checkpoint(  # a 4x4 map at 64 px: a peak and a box to find
        tmp_path / "m.pt", CAMNet("resnet18", 3, 16), class_names=TINY_CLASSES, img_size=64
    )
    make_photo(tmp_path / "one.png", (64, 48))
    args = ["cam", "one.png", "--model", str(model), "-o", "out", "--device", "cpu"]
    code, heavy, stdout, stderr = run_in_subprocess(args, tmp_path, ("scipy",))
    assert code == 0 and heavy == [], stderr  # scipy.ndimage: the box's connected regions
    assert "one.png" in stdout and (tmp_path / "out" / "one_cam.png").is_file()
    code, heavy, stdout, stderr = run_in_subprocess([*args, "--json", "--overwrite"], tmp_path)
    assert code == 0, stderr
    (found,) = json.loads(stdout)["images"][0]["maps"]
    assert found["box"] is not None and found["peak"] is not None
    x0, y0, x1, y1 = found["box"]
    assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 48
    assert x0 <= found["peak"][0] < x1 and y0 <= found["peak"][1] < y1


def test_onnx_and_checkpoint_give_the_same_maps_through_numpy(
    tiny_onnx: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    make_photo(tmp_path / "p.png", (50, 40), seed=4)
    arrays = {}
    for name, model in (("onnx", tiny_onnx), ("ckpt", tiny_checkpoint)):
        result = runner.invoke(
            app,
            [
                *("cam", str(tmp_path / "p.png"), "-m", str(model), "-o", str(tmp_path / name)),
                *("--save-array", "--overlay-only", "--device", "cpu"),
            ],
        )
        assert result.exit_code == 0, result.output
        arrays[name] = np.load(tmp_path / name / "p.npz")
    for key in ("cam", "heatmap", "logits"):
        np.testing.assert_allclose(arrays["onnx"][key], arrays["ckpt"][key], atol=1e-4)


def test_missing_image_is_named_before_any_model_is_looked_at(tmp_path: Path) -> None:
    # No --model: the ImageNet weights (absent from the empty TORCH_HOME) are never looked at.
    code, heavy, stdout, stderr = run_in_subprocess(["cam", "missing.jpg"], tmp_path)
    assert code != 0 and heavy == [] and stdout == ""
    assert "missing.jpg: no such file" in stderr and "ImageNet" not in stderr
    assert not (tmp_path / "cam_results").exists()


def test_output_folder_that_is_a_file_is_refused_before_loading(tmp_path: Path) -> None:
    make_photo(tmp_path / "one.png")
    (tmp_path / "taken").write_text("a file")
    code, heavy, _, stderr = run_in_subprocess(["cam", "one.png", "-o", "taken/sub"], tmp_path)
    assert code == 1 and heavy == []
    assert stderr.strip().splitlines() == [
        "camtool: error: cannot use output folder taken/sub: taken is a file"
    ]


def test_bad_shard_and_opset_are_refused_before_torch(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    make_photo(tmp_path / "pics" / "a.png")
    code, heavy, _, stderr = run_in_subprocess(["batch-cam", "pics", "--shard", "4/2"], tmp_path)
    assert code == 2 and heavy == [] and "--shard 4/2" in stderr
    code, heavy, _, stderr = run_in_subprocess(
        ["export", "--model", str(tiny_checkpoint), "--opset", "99"], tmp_path
    )
    assert code == 2 and heavy == [] and "opset 99 not supported" in stderr


def _deny_reading(monkeypatch: pytest.MonkeyPatch, *denied: Path) -> None:
    """Make ``os.access`` (and opening) say "permission denied" for ``denied``, even as root."""
    names = {os.path.abspath(p) for p in denied}
    real_access, real_open = os.access, Image.open

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        if os.path.abspath(path) in names and mode & os.R_OK:
            return False
        return real_access(path, mode, **kwargs)

    def image_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(path, str | Path) and os.path.abspath(path) in names:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(Image, "open", image_open)


def test_unreadable_image_fails_alone_with_exit_3(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = make_photo(tmp_path / "good.png")
    bad = make_photo(tmp_path / "unreadable.png", seed=1)
    _deny_reading(monkeypatch, bad)
    result = runner.invoke(
        app,
        [
            *("cam", str(good), str(bad), "-m", str(tiny_checkpoint)),
            "-o",
            str(tmp_path / "o"),
            "--json",
        ],
    )
    assert result.exit_code == 3, result.output
    doc = json.loads(result.stdout)
    assert [i["error"] for i in doc["images"]] == [None, f"{bad}: permission denied"]
    assert (tmp_path / "o" / "good_cam.png").is_file()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_really_unreadable_image_fails_alone(tmp_path: Path, tiny_checkpoint: Path) -> None:
    good = make_photo(tmp_path / "good.png")
    bad = make_photo(tmp_path / "bad.png", seed=1)
    bad.chmod(0)
    result = runner.invoke(app, ["cam", str(good), str(bad), "-m", str(tiny_checkpoint)])
    assert result.exit_code == 3 and "bad.png: permission denied" in result.stderr


@pytest.mark.parametrize(
    ("option", "what"), [("--model", "checkpoint"), ("--config", "config file")]
)
def test_unreadable_model_or_config_is_one_line_exit_1(
    tmp_path: Path,
    tiny_checkpoint: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    what: str,
) -> None:
    image = make_photo(tmp_path / "a.png")
    config = tmp_path / "c.toml"
    config.write_text("[cam]\ntopk = 1\n")
    denied = tiny_checkpoint if option == "--model" else config
    _deny_reading(monkeypatch, denied)
    args = ["cam", str(image), "--model", str(tiny_checkpoint), "--config", str(config)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"camtool: error: cannot read {what} {denied}: permission denied"
    ]
    result = runner.invoke(app, ["cam", str(image), option, str(tmp_path)])  # a folder
    assert result.exit_code == 1 and "is a folder, not a file" in result.stderr


def test_no_command_lets_click_judge_a_path() -> None:
    """click's exists/readable/dir_okay/file_okay checks end a command with a usage error; every
    path is checked by camtool instead (see camtool.paths)."""
    group: Any = typer.main.get_command(app)
    checked = 0
    for name, command in group.commands.items():
        for param in command.params:
            described = param.type_descriptor  # what typer builds its click.Path from
            if "Path" in str(described.annotation):
                checked += 1
                info = described.parameter_info
                assert not info.exists and not info.readable, (name, param.name)
                assert info.dir_okay and info.file_okay, (name, param.name)
    assert checked >= 15


def test_numpy_heatmap_conventional_equals_bilinear_interpolation() -> None:
    rng = np.random.default_rng(0)
    for cells, size in (((5, 5), (160, 160)), ((2, 7), (33, 250)), ((1, 1), (4, 3))):
        cam = rng.normal(size=cells).astype(np.float32)
        want = F.interpolate(
            torch.from_numpy(cam)[None, None], size=size, mode="bilinear", align_corners=False
        )[0, 0].numpy()
        want = (want - want.min()) / (want.max() - want.min()) if np.ptp(want) > 0 else want * 0
        got = heatmap(cam, size, mode="conventional")
        assert got.dtype == np.float32 and got.shape == size
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_explain_batch_answers_the_same_for_arrays_and_tensors() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 4)).astype(np.float32)
    cams = rng.normal(size=(2, 4, 3, 5)).astype(np.float32)

    def source(images: Any) -> tuple[Any, Any]:
        if isinstance(images, torch.Tensor):
            return torch.from_numpy(logits), torch.from_numpy(cams)
        return logits, cams

    a = explain_batch(source, np.zeros((2, 3, 8, 8), np.float32), topk=2)
    b = explain_batch(source, torch.zeros(2, 3, 8, 8), topk=2)
    for field in ("logits", "probs", "class_idx", "cams"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_array_equal(a.class_idx, np.argsort(-logits, axis=1)[:, :2])
    np.testing.assert_allclose(a.probs, torch.from_numpy(logits).softmax(1).numpy(), atol=1e-6)
    np.testing.assert_array_equal(a.cams[1, 0], cams[1, a.class_idx[1, 0]])
    assert select_classes(logits, 3, 2).tolist() == [[3], [3]]


def test_preprocess_array_is_preprocess_without_torch() -> None:
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (30, 50, 3), np.uint8))
    args = (image, 16, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    array = preprocess_array(*args)
    assert array.dtype == np.float32 and array.shape == (3, 16, 27)
    np.testing.assert_array_equal(array, preprocess(*args).numpy())


def test_jet_is_matplotlibs_jet_and_other_maps_still_work() -> None:
    from matplotlib import colormaps

    for name in ("jet", "viridis"):
        want = (colormaps[name].resampled(256)(np.arange(256))[:, :3] * 255).astype(np.uint8)
        np.testing.assert_array_equal(colormap_lut(name), want)


def test_figure_shows_image_heatmap_and_overlay_side_by_side() -> None:
    image = Image.new("RGB", (80, 40), (200, 10, 10))
    heat = np.zeros((40, 80), np.float32)
    blended = Image.new("RGB", (80, 40), (10, 200, 10))
    figure = Image.open(__import__("io").BytesIO(figure_png(image, heat, blended, "cat (p = 1)")))
    assert figure.mode == "RGB" and figure.height < figure.width / 3 + 100
    row = np.asarray(figure)[figure.height - 60]  # a row through the three panels
    coloured = [tuple(int(v) for v in row[x]) for x in (200, 200 + 412, 200 + 824)]
    assert coloured[0] == (200, 10, 10)  # original
    assert coloured[1] == tuple(int(v) for v in colormap_lut("jet")[0])  # heat 0 in jet
    assert coloured[2] == (10, 200, 10)  # overlay


def test_path_checks_name_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from camtool.errors import CamtoolError
    from camtool.paths import require_file, require_writable_dir, unreadable_file_reason

    image = make_photo(tmp_path / "a.png")
    assert unreadable_file_reason(image) is None
    assert unreadable_file_reason(tmp_path / "nope.png") == "no such file"
    assert unreadable_file_reason(tmp_path) == "is a folder, not a file"
    with pytest.raises(CamtoolError, match="model not found: .*nope.onnx"):
        require_file(tmp_path / "nope.onnx", "model")
    assert require_writable_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checked, not created
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: not mode & os.W_OK)
    with pytest.raises(CamtoolError, match=f"permission denied on {tmp_path}$"):
        require_writable_dir(tmp_path / "new")
