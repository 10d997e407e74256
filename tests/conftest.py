"""Shared fixtures: isolated state, a tiny checkpoint, small images, fake ImageNet weights."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from PIL import Image

if TYPE_CHECKING:
    from camtool.settings import Settings

TINY_CLASSES = ["cat", "dog", "bird"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` are skipped where torch sees no CUDA device."""
    marked = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in marked:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No CAMTOOL_* variable from the outside, and torch's cache in a private folder."""
    for name in list(os.environ):
        if name.startswith("CAMTOOL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch_home_empty"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 3-class ResNet-18 checkpoint at 32 px."""
    import torch

    from camtool.core.checkpoint import save_checkpoint
    from camtool.core.model import CAMNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, CAMNet("resnet18", 3), class_names=TINY_CLASSES, img_size=32)
    return path


def make_photo(path: Path, size: tuple[int, int] = (48, 36), seed: int = 0) -> Path:
    """Write a small random RGB image (width, height) and return its path."""
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return make_photo(tmp_path / "photo.png")


@pytest.fixture(scope="session")
def imagenet_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TORCH_HOME holding stand-in 'ImageNet' ResNet-18 weights (random, right shapes)."""
    import torch
    import torchvision

    from camtool.core.model import imagenet_weights_file

    home = tmp_path_factory.mktemp("torch_home")
    previous = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(home)
    try:
        _, cache = imagenet_weights_file("resnet18")
    finally:
        if previous is None:
            del os.environ["TORCH_HOME"]
        else:
            os.environ["TORCH_HOME"] = previous
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    torch.save(torchvision.models.resnet18().state_dict(), cache)
    return home


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run the test from inside its own tmp folder (default outputs land there)."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def tiny_train_settings(data: Path, checkpoints: Path, **training: Any) -> Settings:
    """Settings of a tiny CPU training run on a 32 px folder dataset (4 images held out);
    ``training`` overrides keys of ``[training]``."""
    from camtool.settings import load_settings

    values: dict[str, Any] = {
        "batch_size": 4,
        "num_epochs": 2,
        "checkpoint_dir": checkpoints,
        "early_stopping_patience": 0,
        "save_every": 2,
        **training,
    }
    return load_settings(
        None,
        {
            "model": {"pretrained": False},
            "dataset": {"name": "folder", "data_dir": data, "img_size": 32, "val_size": 4},
            "training": values,
            "runtime": {"workers": 0, "device": "cpu"},
        },
    )


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: tiny models only lose time to thread hand-offs (and load)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def export_document(**fields: Any) -> dict[str, Any]:
    """A valid camtool ONNX-export metadata document (2 classes, 32 px), with ``fields`` replaced
    or added: what :func:`camtool.core.onnx_runner.info_from_metadata` reads."""
    from camtool.core.onnx_runner import EXPORT_FORMAT

    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "format_version": 1,
        "class_names": ["a", "b"],
        "num_classes": 2,
        "img_size": 32,
        "mean": [0, 0, 0],
        "std": [1, 1, 1],
    }
    return {**document, **fields}


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_checkpoint`` exported as ONNX."""
    from camtool.export.exporter import export_model

    target = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_model(tiny_checkpoint, output=target)
    return target
