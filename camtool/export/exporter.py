"""``camtool export``: a CAMNet as one ONNX or TorchScript graph, checked after writing.

A CAM is the last feature map contracted with the linear layer's weights, so one forward graph
gives ``images (N, 3, H, W) -> logits (N, C), cams (N, C, h, w)`` (batch and image size dynamic),
with camtool's metadata inside (see :mod:`camtool.core.onnx_runner`). The written file is loaded
as camtool loads it and run on two inputs of different sizes; each output's largest difference
from PyTorch must stay within :data:`TOLERANCE` x ``max(1, max |PyTorch|)`` (float32 exports
differ by about 1e-6 of that), else nothing is left at the target. ONNX uses the TorchScript-based
exporter (``dynamo=False``: the newer one needs ``onnxscript``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from camtool.core.checkpoint import LoadedModel, load_checkpoint
from camtool.core.model import CAMNet
from camtool.core.onnx_runner import (
    EXPORT_FORMAT,
    EXPORT_FORMAT_VERSION,
    FORMAT_KEY,
    INPUT_NAME,
    METADATA_KEY,
    OUTPUT_NAMES,
    OnnxRunner,
    info_from_metadata,
)
from camtool.core.runner import ModelInfo
from camtool.errors import CamtoolError, ConfigError, first_line
from camtool.export.options import FORMATS, check_export_options
from camtool.export.report import (
    TOLERANCE,
    ExportCheckError,
    ExportReport,
    SampleCheck,
    TensorSpec,
)
from camtool.fsutil import (
    SCRATCH_PREFIX,
    atomic_path,
    refuse_to_replace,
    remove_stale_temps,
    writing,
)
from camtool.paths import require_file
from camtool.textio import to_json
from camtool.version import __version__

__all__ = [
    "TOLERANCE",
    "TORCHSCRIPT_METADATA",
    "CamGraph",
    "ExportCheckError",
    "ExportReport",
    "SampleCheck",
    "TensorSpec",
    "default_output",
    "export_model",
    "load_torchscript",
    "metadata_document",
    "sample_shapes",
]

#: The TorchScript extra file holding the metadata document.
TORCHSCRIPT_METADATA = "camtool.json"


class CamGraph(nn.Module):
    """:meth:`CAMNet.forward_cams` as a module returning the plain tuple ``(logits, cams)``."""

    def __init__(self, model: CAMNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``images (N, 3, H, W) -> (logits (N, C), cams (N, C, h, w))``."""
        logits, cams = self.model.forward_cams(images)
        return logits, cams


def default_output(checkpoint: Path, fmt: str = "onnx") -> Path:
    """The default export path: the checkpoint's, with the format's suffix for its own."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + FORMATS[fmt])


def sample_shapes(img_size: int) -> list[tuple[int, int, int, int]]:
    """The two check inputs: batch 2 square at ``img_size``, batch 1 taller than wide."""
    return [(2, 3, img_size, img_size), (1, 3, img_size + img_size // 2, img_size)]


def metadata_document(loaded: LoadedModel) -> dict[str, Any]:
    """The JSON metadata stored in an export (see :mod:`camtool.core.onnx_runner`)."""
    geometry = loaded.geometry
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "camtool_version": __version__,
        "arch": loaded.arch,
        "num_classes": loaded.model.num_classes,
        "output_stride": loaded.model.output_stride,
        "class_names": list(loaded.class_names),
        "img_size": int(loaded.img_size),
        "mean": [float(m) for m in loaded.mean],
        "std": [float(s) for s in loaded.std],
        "source_checkpoint": Path(loaded.source).name,
    }
    if geometry is not None:  # where the map's cells sit; absent if it cannot be derived
        document["cell_geometry"] = geometry.to_dict()
    return document


def load_torchscript(path: Path) -> tuple[torch.jit.ScriptModule, ModelInfo]:
    """Load a ``camtool export --format torchscript`` file and the model info it carries.

    Raises:
        CamtoolError: missing, not TorchScript, or not a camtool export.
    """
    path = require_file(path, "model")
    extra = {TORCHSCRIPT_METADATA: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as exc:
        first = first_line(exc)
        raise CamtoolError(f"{path} is not a readable TorchScript file ({first})") from None
    raw = extra[TORCHSCRIPT_METADATA]
    try:
        document = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CamtoolError(f"{path} has damaged camtool metadata ({exc})") from None
    if not isinstance(document, dict):
        raise CamtoolError(
            f"{path} is TorchScript but not a camtool export (no {TORCHSCRIPT_METADATA})"
        )
    return module, info_from_metadata(document, str(path))


@contextlib.contextmanager
def _exporting(fmt_name: str) -> Iterator[None]:
    """Quiet and gradient-free; any failure becomes one error naming ``fmt_name``."""
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            yield
    except Exception as exc:  # exporters raise many kinds; all mean the same to the user
        text = first_line(exc)
        text = text if text == type(exc).__name__ else f"{type(exc).__name__}: {text}"
        raise CamtoolError(f"cannot export the model to {fmt_name}: {text}") from None


def _onnx_bytes(
    graph: CamGraph, sample: Tensor, opset: int, document: str, scratch_dir: Path
) -> bytes:
    """The exported graph with camtool's metadata ``document`` (JSON); the exporter writes into
    ``scratch_dir``."""
    import onnx

    names = {0: "batch"}
    prefix = SCRATCH_PREFIX + "export-"
    with _exporting("ONNX"), tempfile.TemporaryDirectory(prefix=prefix, dir=scratch_dir) as tmp:
        raw = Path(tmp) / "graph.onnx"
        torch.onnx.export(
            graph,
            (sample,),
            str(raw),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={
                INPUT_NAME: {**names, 2: "height", 3: "width"},
                "logits": names,
                "cams": {**names, 2: "h", 3: "w"},
            },
            opset_version=opset,
            training=torch.onnx.TrainingMode.EVAL,
            do_constant_folding=True,
            dynamo=False,
        )
        proto = onnx.load(str(raw))
        onnx.helper.set_model_props(proto, {FORMAT_KEY: EXPORT_FORMAT, METADATA_KEY: document})
        proto.doc_string = "camtool: images -> logits, class activation maps"
        onnx.checker.check_model(proto)
        return bytes(proto.SerializeToString())


def _torchscript_bytes(graph: CamGraph, sample: Tensor, document: str) -> bytes:
    """The traced graph, saved with camtool's metadata ``document`` (JSON) as an extra file."""
    buffer = io.BytesIO()
    with _exporting("TorchScript"):
        traced = torch.jit.trace(graph, (sample,), check_trace=False)
        torch.jit.save(traced, buffer, _extra_files={TORCHSCRIPT_METADATA: document})
    return buffer.getvalue()


def _check(
    path: Path, fmt: str, graph: CamGraph, expected: ModelInfo
) -> tuple[list[SampleCheck], list[TensorSpec], list[TensorSpec]]:
    """Load ``path`` as camtool would and compare it with ``graph`` on the sample inputs."""
    run: Callable[[Tensor], tuple[Tensor, Tensor]]
    if fmt == "onnx":
        runner = OnnxRunner(path, "cpu")
        info = runner.info
        run = runner
        inputs = [TensorSpec(i.name, list(i.shape)) for i in runner.session.get_inputs()]
        outputs = [TensorSpec(o.name, list(o.shape)) for o in runner.session.get_outputs()]
    else:
        module, info = load_torchscript(path)
        run = module
        classes = len(expected.class_names)
        inputs = [TensorSpec(INPUT_NAME, ["batch", 3, "height", "width"])]
        outputs = [
            TensorSpec("logits", ["batch", classes]),
            TensorSpec("cams", ["batch", classes, "h", "w"]),
        ]
    if info.class_names != expected.class_names or info.img_size != expected.img_size:
        raise CamtoolError(f"export check failed: the metadata read back from {path} differs")
    generator = torch.Generator().manual_seed(0)
    samples = []
    with torch.no_grad():
        for shape in sample_shapes(expected.img_size):
            images = torch.randn(shape, generator=generator)
            got = run(images)
            (logits, cams), (ref_logits, ref_cams) = (got[0], got[1]), graph(images)
            if logits.shape != ref_logits.shape or cams.shape != ref_cams.shape:
                raise CamtoolError(
                    f"export check failed: input {list(shape)} gave shapes {list(logits.shape)}, "
                    f"{list(cams.shape)} instead of {list(ref_logits.shape)}, "
                    f"{list(ref_cams.shape)}"
                )
            check = SampleCheck(
                input_shape=list(shape),
                logits_shape=list(logits.shape),
                cams_shape=list(cams.shape),
                logits_max_diff=float((logits.float() - ref_logits).abs().max()),
                cams_max_diff=float((cams.float() - ref_cams).abs().max()),
                logits_limit=TOLERANCE * max(1.0, float(ref_logits.abs().max())),
                cams_limit=TOLERANCE * max(1.0, float(ref_cams.abs().max())),
                same_prediction=bool(torch.equal(logits.argmax(1), ref_logits.argmax(1))),
            )
            samples.append(check)
    return samples, inputs, outputs


def _prepare_output(output: Path, checkpoint: Path, overwrite: bool) -> None:
    if output.resolve() == checkpoint.resolve():
        raise ConfigError(f"the export would overwrite the checkpoint {checkpoint}; choose -o FILE")
    if output.is_dir():
        raise CamtoolError(f"cannot write {output}: it is a folder")
    refuse_to_replace([output], overwrite=overwrite, hint=", or choose another -o FILE")
    with writing(output):
        output.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(output.parent, os.W_OK):
        raise CamtoolError(f"cannot write {output}: permission denied")
    remove_stale_temps(output.parent)  # of exports killed before


def export_model(
    checkpoint: Path,
    *,
    fmt: str = "onnx",
    output: Path | None = None,
    opset: int | None = None,
    arch: str | None = None,
    on_progress: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> ExportReport:
    """Export a checkpoint's model as one graph ``images -> (logits, cams)`` and check the file.

    Args:
        checkpoint: a camtool checkpoint, or a plain state dict of an arch camtool accepts.
        fmt: ``"onnx"`` or ``"torchscript"``.
        output: the file to write; default :func:`default_output`.
        opset: ONNX opset, :data:`~camtool.export.options.MIN_OPSET` .. ``MAX_OPSET`` (default
            ``DEFAULT_OPSET``); ONNX only.
        arch: the arch of a plain state dict (``None``: recognised from its tensors).
        on_progress: called with a short message before each step.
        overwrite: replace an existing ``output`` (else refuse).

    Returns:
        The report of a file that passed its check.

    Raises:
        ConfigError: unknown format, opset out of range or given for TorchScript, unknown or
            refused arch.
        ExportCheckError: the file does not reproduce the model (it carries the report).
        CamtoolError: the checkpoint cannot be loaded or exported, ``output`` exists (without
            ``overwrite``), or the file cannot be written (e.g. a full disk).
    """
    opset = check_export_options(fmt, opset)
    notify = on_progress or (lambda _message: None)
    checkpoint = Path(checkpoint)
    target = Path(output) if output is not None else default_output(checkpoint, fmt)
    loaded = load_checkpoint(checkpoint, arch=arch)
    _prepare_output(target, checkpoint, overwrite)
    graph = CamGraph(loaded.model.cpu()).eval()
    metadata = metadata_document(loaded)
    expected = info_from_metadata(metadata, str(checkpoint))
    sample = torch.zeros(sample_shapes(loaded.img_size)[0])
    document = to_json(metadata, indent=None)

    notify(f"exporting {checkpoint} to {fmt} ...")
    started = time.perf_counter()
    if fmt == "onnx":
        assert opset is not None
        data = _onnx_bytes(graph, sample, opset, document, target.parent)
    else:
        data = _torchscript_bytes(graph, sample, document)
    export_seconds = time.perf_counter() - started

    with writing(target), atomic_path(target) as tmp:
        tmp.write_bytes(data)
        notify(f"checking {target} against PyTorch ...")
        started = time.perf_counter()
        samples, inputs, outputs = _check(tmp, fmt, graph, expected)
        report = ExportReport(
            file=str(target),
            format=fmt,
            opset=opset,
            checkpoint=str(checkpoint),
            inputs=inputs,
            outputs=outputs,
            samples=samples,
            size_bytes=len(data),
            export_seconds=round(export_seconds, 3),
            check_seconds=round(time.perf_counter() - started, 3),
            metadata=metadata,
        )
        report.refuse_if_failed()
    return report
