"""Explaining whole folders (``camtool batch-cam``): inputs, the streaming pipeline, manifest,
gallery.

Modules:

* ``inputs`` -- finding the images, naming their outputs, shards; reading and resizing them in
  worker processes (NumPy, no torch)
* ``pipeline`` -- ``run_batch``: batches by input size, forward passes; ``BatchReport``, the
  summary a run prints and its ``--json`` document
* ``manifest`` -- drawing and writing the maps in threads; ``manifest.jsonl`` and ``manifest.csv``
* ``gallery`` -- ``index.html``
* ``gallery_assets`` -- the gallery's inline stylesheet and script (filters, sorting)
"""
