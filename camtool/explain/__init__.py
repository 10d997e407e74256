"""Explaining image files: maps written as figures, overlays and arrays (``cam``, ``batch-cam``).

Modules:

* ``job`` -- ``camtool cam``: a handful of files with one model
* ``files`` -- read, run and write one file's maps (shared by ``cam`` and ``batch-cam``)
* ``render`` -- colouring heatmaps and blending them over images
* ``figure`` -- the three-panel figure, original | heatmap | overlay
* ``colormaps`` -- colour lookup tables without importing matplotlib where possible
"""
