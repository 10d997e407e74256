"""Explaining image files: maps written as figures, overlays and arrays (``cam``, ``batch-cam``;
the modules are in the README's package map)."""
