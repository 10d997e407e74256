"""What ``camtool export`` accepts, checked without importing torch (before a model is loaded)."""

from __future__ import annotations

from camtool.choices import ExportFormat
from camtool.errors import ConfigError

__all__ = ["DEFAULT_OPSET", "FORMATS", "MAX_OPSET", "MIN_OPSET", "check_export_options"]

#: Export formats, and the suffix of the default output file of each.
FORMATS: dict[str, str] = {
    ExportFormat.onnx.value: ".onnx",
    ExportFormat.torchscript.value: ".torchscript.pt",
}
#: ONNX opsets: Einsum needs 12; 20 is the newest the TorchScript-based exporter writes.
MIN_OPSET = 12
MAX_OPSET = 20
DEFAULT_OPSET = 17


def check_export_options(fmt: str, opset: int | None) -> int | None:
    """The opset to export with (``None`` for TorchScript), once ``fmt`` and ``opset`` fit.

    Raises:
        ConfigError: unknown format, an opset outside :data:`MIN_OPSET`..:data:`MAX_OPSET`, or an
            opset given for TorchScript (exit code 2).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if opset is not None and fmt != "onnx":
        raise ConfigError("--opset applies to ONNX exports only")
    if fmt != "onnx":
        return None
    opset = DEFAULT_OPSET if opset is None else opset
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(f"opset {opset} not supported; choose {MIN_OPSET} to {MAX_OPSET}")
    return opset
