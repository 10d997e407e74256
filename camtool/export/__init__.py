"""Exporting a CAMNet as one ONNX or TorchScript graph that outputs logits and maps.

Modules:

* ``exporter`` -- ``camtool export``: tracing, checking and writing the graph
* ``options`` -- what ``export`` accepts, checked before torch is imported
* ``report`` -- what ``export`` reports: the graph's tensors and the check's figures
"""
