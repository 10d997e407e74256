"""Measuring a model (``camtool eval``): classification, CAM localization, faithfulness.

``evaluate`` runs the passes (``classification``, ``localization``, ``faithfulness``) and writes
the results; the formulas are in ``metrics`` and ``localization_metrics``; ``data`` holds the
split and the batch loop; ``source`` and ``samples`` say which dataset and which images.
"""
