"""The CUDA path: mixed-precision training steps, channels-last batch-cam, exports run on CUDA.

Marked ``cuda``: skipped where torch sees no CUDA device (see ``conftest.py``);
``benchmarks/gpu_check.sh`` runs them with ``pytest -m cuda``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from camtool.batch.pipeline import run_batch
from camtool.core.loading import open_runner
from camtool.data.synthetic import make_shapes_dataset
from camtool.settings import load_settings
from camtool.training.loop import train
from camtool.training.types import SilentObserver, TrainPlan
from tests.conftest import make_photo

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cuda_data") / "shapes"
    return make_shapes_dataset(root, train_per_class=8, val_per_class=2, image_size=32, seed=2)


class Plan(SilentObserver):
    def __init__(self) -> None:
        self.plan: TrainPlan | None = None

    def on_start(self, plan: TrainPlan) -> None:
        self.plan = plan


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_amp_training_steps(
    shapes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, precision: str
) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    if precision == "fp16":  # fp16 with a grad scaler is what GPUs without bf16 get
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    settings = load_settings(
        None,
        {
            "model": {"pretrained": False},
            "dataset": {"name": "folder", "data_dir": str(shapes), "img_size": 32, "val_size": 10},
            "training": {
                "num_epochs": 2,
                "batch_size": 8,
                "checkpoint_dir": str(tmp_path / "ck"),
            },
            "runtime": {"device": "cuda", "amp": True, "workers": 0},
        },
    )
    watch = Plan()
    result = train(settings, observer=watch)
    assert watch.plan is not None and watch.plan.precision == precision
    assert str(watch.plan.device).startswith("cuda")
    losses = [m.train_loss for m in result.history]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert (tmp_path / "ck" / "best.pt").is_file()


def test_channels_last_batch_cam_on_cuda_matches_cpu(tmp_path: Path, tiny_checkpoint: Path) -> None:
    for i in range(6):
        make_photo(tmp_path / "pics" / f"{i}.png", (48 + 8 * (i % 2), 36), seed=i)
    maps: dict[str, Any] = {}
    for device in ("cuda", "cpu"):
        runner: Any = open_runner(tiny_checkpoint, device, amp=False)
        assert runner.channels_last
        weight = next(p for p in runner.model.parameters() if p.ndim == 4)
        assert weight.is_contiguous(memory_format=torch.channels_last)
        settings = load_settings(
            None,
            {
                "cam": {"output_dir": str(tmp_path / device)},
                "runtime": {"workers": 0, "batch_size": 4},
            },
        )
        report = run_batch([tmp_path / "pics"], settings, runner=runner, fmt="png", save_array=True)
        assert report.ok == 6 and report.failed == 0
        maps[device] = {p.name: np.load(p)["heatmap"] for p in (tmp_path / device).rglob("*.npz")}
    assert maps["cuda"].keys() == maps["cpu"].keys() and len(maps["cpu"]) == 6
    for name, heat in maps["cpu"].items():
        np.testing.assert_allclose(maps["cuda"][name], heat, atol=2e-2)


def test_onnx_export_runs_on_cuda_like_pytorch(tmp_path: Path, tiny_checkpoint: Path) -> None:
    import onnxruntime as ort

    from camtool.export.exporter import export_model

    path = tmp_path / "m.onnx"
    export_model(tiny_checkpoint, output=path)
    onnx_runner: Any = open_runner(path, "cuda")
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    assert onnx_runner.device == ("cuda" if has_cuda else "cpu")
    torch_runner: Any = open_runner(tiny_checkpoint, "cuda")
    images = np.random.default_rng(0).normal(size=(2, 3, 32, 48)).astype(np.float32)
    want_logits, want_cams = torch_runner(images)
    logits, cams = onnx_runner(images)
    np.testing.assert_allclose(logits, want_logits, atol=1e-2)
    np.testing.assert_allclose(cams, want_cams, atol=1e-2)
