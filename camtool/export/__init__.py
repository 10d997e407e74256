"""Exporting a CAMNet as one ONNX or TorchScript graph that outputs logits and maps.

Modules:

* ``exporter``
* ``options``

The names below are importable from the package itself; each is loaded from its module on
first use, so importing the package costs nothing.
"""

from __future__ import annotations

from camtool._lazy import lazy_exports

_WHERE: dict[str, str] = {
    "CamGraph": "exporter",
    "DEFAULT_OPSET": "options",
    "ExportCheckError": "exporter",
    "ExportReport": "exporter",
    "FORMATS": "options",
    "MAX_OPSET": "options",
    "MIN_OPSET": "options",
    "SampleCheck": "exporter",
    "TOLERANCE": "exporter",
    "TORCHSCRIPT_METADATA": "exporter",
    "TensorSpec": "exporter",
    "check_export_options": "options",
    "default_output": "exporter",
    "export_model": "exporter",
    "load_torchscript": "exporter",
    "metadata_document": "exporter",
    "sample_shapes": "exporter",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)
