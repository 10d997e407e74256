"""Running a ``camtool export`` ONNX file with onnxruntime: the same maps, no PyTorch forward.

An export is one graph, ``images (N, 3, H, W) -> logits (N, C), cams (N, C, h, w)``, whose
``metadata_props`` hold :data:`EXPORT_FORMAT` under :data:`FORMAT_KEY` and a JSON document
(``arch``, ``class_names``, ``img_size``, ``mean``, ``std``, ``output_stride``,
``cell_geometry`` ...) under :data:`METADATA_KEY`; TorchScript exports keep it as
``camtool.json``. This module imports neither torch nor (until a model opens) onnxruntime.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from camtool.core.archs import RESNET_ARCHS
from camtool.core.runner import ModelInfo, as_array, checked_preprocessing, is_torch_tensor
from camtool.core.upsample import CellGeometry, resnet_geometry
from camtool.errors import CamtoolError, ConfigError, first_line
from camtool.paths import require_file

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_FORMAT_VERSION",
    "FORMAT_KEY",
    "INPUT_NAME",
    "METADATA_KEY",
    "OUTPUT_NAMES",
    "OnnxRunner",
    "info_from_metadata",
    "parse_metadata_props",
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
INPUT_NAME = "images"
OUTPUT_NAMES = ("logits", "cams")


def _geometry(document: Mapping[str, Any], source: str) -> CellGeometry | None:
    """The recorded cell geometry, else (older ResNet exports) their stride's, else ``None``."""
    stride = document.get("output_stride")
    if "cell_geometry" in document:
        known = stride if isinstance(stride, int) and not isinstance(stride, bool) else None
        try:
            return CellGeometry.from_dict(document["cell_geometry"], known)
        except ConfigError:
            raise CamtoolError(f"{source} has damaged camtool metadata (cell_geometry)") from None
    if document.get("arch") in RESNET_ARCHS and stride in (16, 32):
        return resnet_geometry(int(stride))
    return None


def info_from_metadata(document: Mapping[str, Any], source: str) -> ModelInfo:
    """The :class:`~camtool.core.runner.ModelInfo` an export's parsed JSON ``document`` describes;
    ``source`` (its file) is named in messages and kept as ``info.source``.

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
        img_size, mean, std = checked_preprocessing(
            document["img_size"], document["mean"], document["std"]
        )
        info = ModelInfo(
            class_names=names,
            img_size=img_size,
            mean=mean,
            std=std,
            arch=str(document["arch"]),
            source=source,
            geometry=_geometry(document, source),
            output_stride=int(document.get("output_stride", 32)),
        )
    except KeyError as exc:
        raise CamtoolError(f"{source} has damaged camtool metadata (no field {exc})") from None
    except (TypeError, ValueError) as exc:
        raise CamtoolError(f"{source} has damaged camtool metadata ({exc})") from None
    if len(names) != num_classes or num_classes < 1:
        raise CamtoolError(
            f"{source} has damaged camtool metadata: {len(names)} class names, "
            f"{num_classes} classes"
        )
    return info


def read_onnx_metadata(path: Path) -> dict[str, Any]:
    """The camtool JSON document of a ``camtool export`` ONNX file, not loaded for inference.

    Raises:
        CamtoolError: missing, not ONNX, not a camtool export, or damaged metadata.
    """
    import onnx
    from google.protobuf.message import DecodeError

    path = require_file(path, "model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise CamtoolError(f"{path} is not a readable ONNX model ({exc})") from None
    if not model.graph.node:
        raise CamtoolError(f"{path} is not a readable ONNX model (no graph in it)")
    return parse_metadata_props({p.key: p.value for p in model.metadata_props}, path)


def parse_metadata_props(props: Mapping[str, str], path: Path) -> dict[str, Any]:
    """The camtool JSON document in an ONNX file's ``metadata_props`` (key -> value).

    Raises:
        CamtoolError: no camtool marker (a foreign ONNX model), or JSON that does not parse.
    """
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


_NO_CUDA = (
    "device {name!r} requested but {why}; use --device cpu, or install onnxruntime-gpu "
    "matching this machine's CUDA"
)


def _device_in_use(session: Any, asked: str) -> str:
    """``cuda[:i]`` if the session's first provider is CUDA, else ``cpu`` (a silent fallback)."""
    in_use = session.get_providers()
    if in_use and in_use[0] == "CUDAExecutionProvider":
        return asked if asked.startswith("cuda:") else "cuda"
    if asked.startswith("cuda"):
        why = f"onnxruntime fell back to {', '.join(in_use) or 'no provider'}"
        raise CamtoolError(_NO_CUDA.format(name=asked, why=why))
    return "cpu"


def _open_session(path: Path, name: str, quick_start: bool) -> Any:
    """An onnxruntime session on ``path`` for device ``name`` (CUDA first where asked, or auto,
    then CPU), or one line saying why not."""
    import onnxruntime as ort

    if name == "mps":
        raise CamtoolError("onnxruntime cannot run on 'mps'; use --device cpu (or auto)")
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if name.startswith("cuda") and not has_cuda:
        raise CamtoolError(_NO_CUDA.format(name=name, why="this onnxruntime has no CUDA provider"))
    providers: list[Any] = ["CPUExecutionProvider"]
    if name.startswith(("cuda", "auto")) and has_cuda:
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no warnings on stderr
    if quick_start:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime's errors derive from Exception only
        message = first_line(exc)
    read_onnx_metadata(path)  # says what is wrong with the file, if it is the file
    raise CamtoolError(f"onnxruntime cannot load {path}: {message}")


class OnnxRunner:
    """A ``camtool export`` ONNX file run by onnxruntime, as a Runner.

    ``device`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:1``; ``self.device`` is what the session
    really runs on. ``quick_start`` applies basic graph optimisations only: on ResNet-18 the
    session opens in ~0.2 s instead of 0.6-1.2 s, a 160 px forward takes ~0.08 s instead of
    ~0.05 s. Outputs are float32 NumPy arrays, CPU tensors for a tensor input.

    Raises:
        CamtoolError: the file is missing, not ONNX, not a camtool export, or onnxruntime cannot
            load it; ``cuda`` without a CUDA provider, or the session fell back to the CPU;
            ``mps``.
    """

    def __init__(self, path: Path, device: str = "auto", *, quick_start: bool = False) -> None:
        self.path = path = require_file(path, "model")
        asked = str(getattr(device, "value", device))
        self.session = _open_session(path, asked, quick_start)
        self.device = _device_in_use(self.session, asked)
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        self.info: ModelInfo = info_from_metadata(parse_metadata_props(props, path), str(path))
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

    def __call__(self, images: Any) -> tuple[Any, Any]:
        """``logits (N, C)``, ``cams (N, C, h, w)`` of normalised ``(N, 3, H, W)`` images."""
        array = np.ascontiguousarray(as_array(images))
        logits, cams = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: array})
        logits, cams = np.asarray(logits, np.float32), np.asarray(cams, np.float32)
        if is_torch_tensor(images):
            import torch  # already imported: the input is a tensor

            return torch.from_numpy(logits), torch.from_numpy(cams)
        return logits, cams
