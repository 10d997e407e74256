"""Self-describing checkpoints: one file holds everything needed to rebuild and explain a model.

A plain dict saved with ``torch.save``, read with ``weights_only=True``: ``format``,
``format_version``, ``camtool_version``, ``model_state``, ``model_args`` {arch, num_classes,
output_stride}, ``class_names``, ``img_size``, ``mean``, ``std``, ``settings``, ``cell_geometry``
{stride, offset, revision} (reused on loading when ``revision`` is ``DERIVATION_REVISION``) and
optionally ``training``. Plain torchvision state dicts load too (:mod:`camtool.core.state_dicts`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from camtool.core.imagenet import IMAGENET_MEAN, IMAGENET_STD
from camtool.core.model import CAMNet, check_cam_invariant, imagenet_class_names, read_weights
from camtool.core.receptive import DERIVATION_REVISION, model_geometry
from camtool.core.runner import RGB, checked_preprocessing
from camtool.core.state_dicts import fit_state, model_of_state_dict
from camtool.core.upsample import CellGeometry
from camtool.errors import CamtoolError
from camtool.fsutil import atomic_path, writing
from camtool.version import __version__

__all__ = ["FORMAT", "FORMAT_VERSION", "LoadedModel", "load_checkpoint", "save_checkpoint"]

FORMAT = "camtool-checkpoint"
FORMAT_VERSION = 1


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
    recorded_geometry: CellGeometry | None = field(default=None, repr=False)

    @property
    def arch(self) -> str:
        return self.model.arch

    @property
    def geometry(self) -> CellGeometry | None:
        """Where the map cells sit on the input: the recorded geometry, else derived from the
        layers; ``None`` if ``torch.fx`` cannot trace the trunk (conventional upsampling only)."""
        if self.recorded_geometry is not None:
            return self.recorded_geometry
        return _geometry_or_none(self.model)


def _geometry_or_none(model: CAMNet) -> CellGeometry | None:
    try:
        return model_geometry(model)
    except CamtoolError:
        return None


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
    }
    geometry = _geometry_or_none(model)
    if geometry is not None:
        payload["cell_geometry"] = {**geometry.to_dict(), "revision": DERIVATION_REVISION}
    if training is not None:
        payload["training"] = dict(training)
    with writing(f"checkpoint {path}"), atomic_path(Path(path)) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _camtool_fields(
    payload: Mapping[str, Any], path: Path
) -> tuple[CAMNet, list[str], tuple[int, RGB, RGB], Mapping[str, Tensor]]:
    """A checkpoint's model (built, not loaded), class names, preprocessing and weights."""
    try:
        version = int(payload.get("format_version", 0))
    except (TypeError, ValueError):
        raise CamtoolError(
            f"{path} is a damaged camtool checkpoint "
            f"(format_version {payload.get('format_version')!r})"
        ) from None
    if version > FORMAT_VERSION:
        raise CamtoolError(f"{path} was written by a newer camtool; upgrade camtool to read it")
    try:
        args = payload["model_args"]
        model = CAMNet(str(args["arch"]), int(args["num_classes"]), int(args["output_stride"]))
        names = payload["class_names"]
        if not isinstance(names, list | tuple):
            raise TypeError(f"class_names is a {type(names).__name__}, not a list of names")
        names = [str(n) for n in names]
        preprocessing = checked_preprocessing(payload["img_size"], payload["mean"], payload["std"])
        state = payload["model_state"]
        if not isinstance(state, Mapping):
            raise TypeError(f"model_state is a {type(state).__name__}, not tensors by name")
    except KeyError as exc:
        raise CamtoolError(f"{path} is a damaged camtool checkpoint (no field {exc})") from None
    except (TypeError, ValueError) as exc:
        raise CamtoolError(f"{path} is a damaged camtool checkpoint ({exc})") from None
    return model, names, preprocessing, state


def load_checkpoint(path: Path, *, arch: str | None = None, img_size: int = 160) -> LoadedModel:
    """Load a camtool checkpoint, or a plain torchvision state dict, safely.

    ``arch`` (``None``: recognised from the tensors) and ``img_size`` apply to a plain state dict
    only, whose classes are ImageNet's when there are 1000, else ``class_<i>``.

    Raises:
        CamtoolError: the file is missing, unsafe, not a checkpoint, or does not fit its model.
    """
    payload = read_weights(Path(path))
    source = str(path)
    if not isinstance(payload, Mapping):
        raise CamtoolError(f"{path} is not a checkpoint (it holds a {type(payload).__name__})")
    if payload.get("format") != FORMAT:
        model = model_of_state_dict(payload, arch=arch, source=source)
        if model.num_classes == 1000:
            names = imagenet_class_names(model.arch)
        else:
            names = [f"class_{i}" for i in range(model.num_classes)]
        return LoadedModel(model, names, img_size, source=source)
    model, names, (img_size, mean, std), state = _camtool_fields(payload, path)
    recorded, geometry = payload.get("cell_geometry"), None
    if isinstance(recorded, Mapping) and recorded.get("revision") == DERIVATION_REVISION:
        with contextlib.suppress(CamtoolError):  # damaged: derive it again
            geometry = CellGeometry.from_dict(dict(recorded), model.output_stride)
    loaded = LoadedModel(
        model,
        names,
        img_size,
        mean,
        std,
        dict(payload.get("settings") or {}),
        payload.get("training"),
        source,
        geometry,
    )
    if len(names) != model.num_classes:
        raise CamtoolError(
            f"{path} is damaged: {len(names)} class names, {model.num_classes} outputs"
        )
    fit_state(model, state, source)
    model.set_input_statistics(mean, std)
    check_cam_invariant(model)
    return loaded
