"""Explaining whole folders (``camtool batch-cam``): inputs, the streaming pipeline, manifest and
gallery (the modules are in the README's package map)."""
