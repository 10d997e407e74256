"""Self-describing checkpoints: one file holds everything needed to rebuild and explain a model.

A camtool checkpoint is a plain dict saved with ``torch.save`` and read back with
``weights_only=True`` (so loading never runs code from the file)::

    format, format_version, camtool_version,
    model_state, model_args {arch, num_classes, output_stride},
    class_names, img_size, mean, std, settings,
    cell_geometry {stride: [sy, sx], offset: [oy, ox]} (where the map's cells sit, derived from
        the layers by camtool.core.receptive; informative: loading derives it again),
    training (optional: optimizer, scheduler, epoch, best metric, RNG state ...)

A plain torchvision ResNet state dict (what the reference lab saved) loads too: the arch is
recognised from the tensors' names and shapes and the class count is read from ``fc.weight``.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from camtool import __version__
from camtool.core.archs import RESNET_ARCHS
from camtool.core.imagenet import IMAGENET_MEAN, IMAGENET_STD
from camtool.core.model import CAMNet, imagenet_class_names
from camtool.core.receptive import model_geometry
from camtool.core.upsample import CellGeometry
from camtool.errors import CamtoolError
from camtool.fsutil import atomic_path

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LoadedModel",
    "load_checkpoint",
    "model_from_state_dict",
    "save_checkpoint",
]

FORMAT = "camtool-checkpoint"
FORMAT_VERSION = 1
_WRAPPER_PREFIXES = ("module.", "model.", "resnet.", "backbone.", "net.", "_orig_mod.")


@dataclass
class LoadedModel:
    """A model ready to explain, with everything its checkpoint said about it."""

    model: CAMNet
    class_names: list[str]
    img_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    settings: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] | None = None
    source: str = ""

    @property
    def arch(self) -> str:
        return self.model.arch

    @property
    def geometry(self) -> CellGeometry:
        """Where the model's map cells sit on its input, derived from its layers."""
        return model_geometry(self.model)


def save_checkpoint(
    path: Path,
    model: CAMNet,
    *,
    class_names: Sequence[str],
    img_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    settings: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
) -> Path:
    """Write a self-describing checkpoint atomically (a crash never leaves half a file)."""
    if len(class_names) != model.num_classes:
        raise CamtoolError(
            f"{len(class_names)} class names given for a model with {model.num_classes} classes"
        )
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "camtool_version": __version__,
        "model_state": state,
        "model_args": {
            "arch": model.arch,
            "num_classes": model.num_classes,
            "output_stride": model.output_stride,
        },
        "class_names": list(class_names),
        "img_size": int(img_size),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "settings": dict(settings or {}),
        "cell_geometry": model_geometry(model).to_dict(),
    }
    if training is not None:
        payload["training"] = dict(training)
    try:
        with atomic_path(Path(path)) as tmp:
            torch.save(payload, tmp)
    except OSError as exc:
        raise CamtoolError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    return Path(path)


def _read(path: Path) -> Any:
    if not os.path.isfile(path):
        raise CamtoolError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CamtoolError(
            f"refusing to load {path}: it is not a plain weights file "
            "(loading it would need to run code from it, or it is not a checkpoint)"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CamtoolError(f"{path} is not a readable PyTorch checkpoint ({exc})") from None


def _strip_wrapper(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    state = dict(state)
    changed = True
    while changed and state:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def _guess_arch(state: Mapping[str, Tensor], num_classes: int) -> str | None:
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    for arch in RESNET_ARCHS:
        for stride in (32,):
            with torch.device("meta"):
                candidate = CAMNet(arch, num_classes, stride)
            wanted = {k: tuple(v.shape) for k, v in candidate.state_dict().items()}
            if wanted == shapes:
                return arch
    return None


def _fit(model: CAMNet, state: Mapping[str, Tensor], source: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        details = []
        if missing:
            details.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if mismatched:
            details.append(f"{len(mismatched)} of another shape (e.g. {mismatched[0]})")
        raise CamtoolError(
            f"checkpoint {source} does not fit a {model.arch} with {model.num_classes} classes: "
            + ", ".join(details)
        )
    model.load_state_dict(state, strict=True)


def model_from_state_dict(
    state: Mapping[str, Tensor],
    *,
    arch: str | None = None,
    class_names: Sequence[str] | None = None,
    img_size: int = 160,
    source: str = "state dict",
) -> LoadedModel:
    """Build a model from a plain torchvision ResNet state dict (the reference lab's format).

    The class count comes from ``fc.weight``; the arch is recognised unless given; the class
    names default to ImageNet's for 1000 classes and ``class_<i>`` otherwise.
    """
    state = _strip_wrapper(state)
    if not all(isinstance(v, Tensor) for v in state.values()) or "fc.weight" not in state:
        raise CamtoolError(f"{source} is neither a camtool checkpoint nor a ResNet state dict")
    num_classes = int(state["fc.weight"].shape[0])
    arch = arch or _guess_arch(state, num_classes)
    if arch is None:
        raise CamtoolError(f"{source} does not match any known ResNet ({', '.join(RESNET_ARCHS)})")
    model = CAMNet(arch, num_classes)
    _fit(model, state, source)
    if class_names is None:
        class_names = (
            imagenet_class_names(arch)
            if num_classes == 1000
            else [f"class_{i}" for i in range(num_classes)]
        )
    if len(class_names) != num_classes:
        raise CamtoolError(f"{len(class_names)} class names for {num_classes} classes in {source}")
    return LoadedModel(model, list(class_names), img_size, source=source)


def load_checkpoint(
    path: Path, *, class_names: Sequence[str] | None = None, img_size: int = 160
) -> LoadedModel:
    """Load a camtool checkpoint, or a plain ResNet state dict, safely.

    Args:
        path: the ``.pt``/``.pth`` file.
        class_names: names for a plain state dict (ignored for camtool checkpoints).
        img_size: image size for a plain state dict (ignored for camtool checkpoints).

    Raises:
        CamtoolError: the file is missing, unsafe, not a checkpoint, or does not fit its model.
    """
    payload = _read(Path(path))
    source = str(path)
    if not isinstance(payload, Mapping):
        raise CamtoolError(f"{path} is not a checkpoint (it holds a {type(payload).__name__})")
    if payload.get("format") != FORMAT:
        inner = payload.get("state_dict", payload.get("model_state_dict", payload))
        if not isinstance(inner, Mapping):
            raise CamtoolError(f"{path} is neither a camtool checkpoint nor a ResNet state dict")
        return model_from_state_dict(
            inner, class_names=class_names, img_size=img_size, source=source
        )
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise CamtoolError(f"{path} was written by a newer camtool; upgrade camtool to read it")
    try:
        args = payload["model_args"]
        model = CAMNet(str(args["arch"]), int(args["num_classes"]), int(args["output_stride"]))
        names = [str(n) for n in payload["class_names"]]
        loaded = LoadedModel(
            model,
            names,
            int(payload["img_size"]),
            tuple(payload["mean"]),  # type: ignore[arg-type]
            tuple(payload["std"]),  # type: ignore[arg-type]
            dict(payload.get("settings") or {}),
            payload.get("training"),
            source,
        )
        state = payload["model_state"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CamtoolError(f"{path} is a damaged camtool checkpoint (bad field {exc})") from None
    if len(names) != model.num_classes:
        raise CamtoolError(
            f"{path} is damaged: {len(names)} class names, {model.num_classes} outputs"
        )
    _fit(model, state, source)
    return loaded
