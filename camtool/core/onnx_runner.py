"""Running a ``camtool export`` ONNX file with onnxruntime: the same maps, no PyTorch forward.

An export is one graph, ``images (N, 3, H, W) -> logits (N, C), cams (N, C, h, w)``, that
carries what camtool needs to use it in its ``metadata_props``:

* ``camtool_format``: the marker :data:`EXPORT_FORMAT` (a file without it is not a camtool
  export);
* ``camtool``: a JSON document with ``format_version``, ``camtool_version``, ``arch``,
  ``num_classes``, ``output_stride``, ``class_names``, ``img_size``, ``mean`` and ``std``, and
  ``cell_geometry`` (``{"stride": [sy, sx], "offset": [oy, ox]}``, where the map's cells sit on
  the input; exports made before it was recorded were ResNets, whose geometry follows from
  ``output_stride``).

The TorchScript export stores the same JSON document as its ``camtool.json`` extra file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from camtool.core.archs import RESNET_ARCHS
from camtool.core.runner import ModelInfo
from camtool.core.upsample import CellGeometry, resnet_geometry
from camtool.errors import CamtoolError, ConfigError

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_FORMAT_VERSION",
    "FORMAT_KEY",
    "INPUT_NAME",
    "METADATA_KEY",
    "OUTPUT_NAMES",
    "OnnxRunner",
    "info_from_metadata",
    "read_onnx_metadata",
]

#: ``metadata_props`` key of the format marker.
FORMAT_KEY = "camtool_format"
#: ``metadata_props`` key of the JSON document.
METADATA_KEY = "camtool"
#: The marker's value, also the ``format`` field of the JSON document.
EXPORT_FORMAT = "camtool-cam-export"
#: Newest version of the JSON document this camtool reads.
EXPORT_FORMAT_VERSION = 1
#: The graph's input.
INPUT_NAME = "images"
#: The graph's outputs, in order.
OUTPUT_NAMES = ("logits", "cams")


def _floats3(value: Any) -> tuple[float, ...]:
    out = tuple(float(v) for v in value)
    if len(out) != 3:
        raise ValueError("mean/std need 3 values")
    return out


def _geometry(document: Mapping[str, Any], source: str) -> CellGeometry | None:
    """The recorded cell geometry; for older exports (ResNets only) the one their output stride
    implies; ``None`` if neither is known (then only conventional upsampling is possible)."""
    if "cell_geometry" in document:
        try:
            return CellGeometry.from_dict(document["cell_geometry"])
        except ConfigError:
            raise CamtoolError(f"{source} has damaged camtool metadata (cell_geometry)") from None
    stride = document.get("output_stride")
    if document.get("arch") in RESNET_ARCHS and stride in (16, 32):
        return resnet_geometry(int(stride))
    return None


def info_from_metadata(document: Mapping[str, Any], source: str) -> ModelInfo:
    """Turn an export's JSON metadata into the :class:`~camtool.core.runner.ModelInfo` it describes.

    Args:
        document: the parsed ``camtool`` JSON document.
        source: the file it came from (for messages, and kept as ``info.source``).

    Raises:
        CamtoolError: written by a newer camtool, or a field is missing or malformed.
    """
    if document.get("format") != EXPORT_FORMAT:
        raise CamtoolError(f"{source} is not a camtool export (unknown metadata format)")
    try:
        version = int(document.get("format_version", 0))
    except (TypeError, ValueError):
        version = 0
    if version > EXPORT_FORMAT_VERSION:
        raise CamtoolError(f"{source} was exported by a newer camtool; upgrade camtool to use it")
    try:
        names = [str(n) for n in document["class_names"]]
        num_classes = int(document["num_classes"])
        info = ModelInfo(
            class_names=names,
            img_size=int(document["img_size"]),
            mean=_floats3(document["mean"]),
            std=_floats3(document["std"]),
            arch=str(document["arch"]),
            source=source,
            geometry=_geometry(document, source),
            output_stride=int(document.get("output_stride", 32)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CamtoolError(f"{source} has damaged camtool metadata (bad field {exc})") from None
    if len(names) != num_classes or num_classes < 1 or info.img_size < 1:
        raise CamtoolError(
            f"{source} has damaged camtool metadata: {len(names)} class names, "
            f"{num_classes} classes, image size {info.img_size}"
        )
    return info


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CamtoolError(f"model not found: {path}")
    if not path.is_file():
        raise CamtoolError(f"{path} is not a file")
    if not os.access(path, os.R_OK):
        raise CamtoolError(f"cannot read {path}: permission denied")


def read_onnx_metadata(path: Path) -> dict[str, Any]:
    """Read and check the camtool metadata of an ONNX file, without loading it for inference.

    Args:
        path: an ``.onnx`` file written by ``camtool export``.

    Returns:
        The parsed ``camtool`` JSON document.

    Raises:
        CamtoolError: missing, not ONNX, not a camtool export, or damaged metadata.
    """
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    _check_file(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise CamtoolError(f"{path} is not a readable ONNX model ({exc})") from None
    if not model.graph.node:
        raise CamtoolError(f"{path} is not a readable ONNX model (no graph in it)")
    props = {p.key: p.value for p in model.metadata_props}
    if props.get(FORMAT_KEY) != EXPORT_FORMAT or METADATA_KEY not in props:
        raise CamtoolError(
            f"{path} is an ONNX model but not a camtool export (no camtool metadata); "
            "make one with: camtool export --model CKPT"
        )
    try:
        document = json.loads(props[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise CamtoolError(f"{path} has damaged camtool metadata ({exc})") from None
    if not isinstance(document, dict):
        raise CamtoolError(f"{path} has damaged camtool metadata (not a JSON object)")
    return document


def _providers(device: torch.device) -> tuple[list[Any], torch.device]:
    import onnxruntime as ort

    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        cuda = ("CUDAExecutionProvider", {"device_id": device.index or 0})
        return [cuda, "CPUExecutionProvider"], device
    return ["CPUExecutionProvider"], torch.device("cpu")


class OnnxRunner:
    """A ``camtool export`` ONNX file run by onnxruntime, behind the
    :class:`~camtool.core.runner.Runner`
    protocol.

    onnxruntime's CUDA provider is used when ``device`` is CUDA and the installed onnxruntime has
    it; otherwise the CPU provider (and ``self.device`` says ``cpu``). Outputs are float32 CPU
    tensors.

    Args:
        path: the ``.onnx`` file.
        device: where to run, as far as onnxruntime can.

    Raises:
        CamtoolError: the file is missing, not ONNX, not a camtool export, or onnxruntime cannot
            load it.
    """

    def __init__(self, path: Path, device: torch.device) -> None:
        import onnxruntime as ort

        path = Path(path)
        self.path = path
        self.info: ModelInfo = info_from_metadata(read_onnx_metadata(path), str(path))
        providers, self.device = _providers(device)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings on stderr
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime's errors derive from Exception only
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CamtoolError(f"onnxruntime cannot load {path}: {first}") from None
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [INPUT_NAME] or not set(OUTPUT_NAMES) <= set(outputs):
            raise CamtoolError(
                f"{path} is not a camtool export: wants input {INPUT_NAME!r} and outputs "
                f"{', '.join(OUTPUT_NAMES)}, has {', '.join(inputs)} -> {', '.join(outputs)}"
            )
        classes = next(o for o in self.session.get_outputs() if o.name == "logits").shape[-1]
        if isinstance(classes, int) and classes != len(self.info.class_names):
            raise CamtoolError(
                f"{path} is damaged: {classes} outputs but {len(self.info.class_names)} names"
            )

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Run the graph on ``(N, 3, H, W)`` normalised images; ``(logits, cams)`` on the CPU."""
        array = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        logits, cams = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: array})
        return torch.from_numpy(np.asarray(logits)), torch.from_numpy(np.asarray(cams))
