"""An ONNX model reports the device onnxruntime really runs it on, and refuses one it cannot."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from camtool.core.onnx_runner import OnnxRunner
from camtool.errors import CamtoolError


def test_auto_on_a_cpu_onnxruntime_runs_and_says_cpu(tiny_onnx: Path) -> None:
    assert OnnxRunner(tiny_onnx, "auto").device == "cpu"


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_a_device_onnxruntime_lacks_is_refused_in_one_line(tiny_onnx: Path, device: str) -> None:
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")  # the GPU check covers that case
    with pytest.raises(CamtoolError, match=f"^(device {device!r} requested|onnxruntime cannot)"):
        OnnxRunner(tiny_onnx, device)


@pytest.fixture
def cuda_that_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """An onnxruntime that lists a CUDA provider whose start fails: the session runs on the CPU
    (what a CUDA build does on a machine whose CUDA libraries do not match)."""
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: available)


@pytest.mark.usefixtures("cuda_that_falls_back")
def test_a_silent_fallback_to_the_cpu_is_reported_as_cpu(tiny_onnx: Path) -> None:
    runner = OnnxRunner(tiny_onnx, "auto")
    assert runner.session.get_providers()[0] == "CPUExecutionProvider"
    assert runner.device == "cpu"


@pytest.mark.usefixtures("cuda_that_falls_back")
def test_a_silent_fallback_is_refused_when_cuda_was_asked_for(tiny_onnx: Path) -> None:
    with pytest.raises(CamtoolError, match="^device 'cuda' requested but onnxruntime fell back"):
        OnnxRunner(tiny_onnx, "cuda")
