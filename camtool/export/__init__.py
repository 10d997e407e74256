"""Exporting a CAMNet as one ONNX or TorchScript graph that outputs logits and maps
(:func:`camtool.export.exporter.export_model`; the modules are in the README's package map)."""
