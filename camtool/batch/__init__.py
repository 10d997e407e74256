"""Explaining whole folders (``camtool batch-cam``): inputs, the streaming pipeline, manifest,
gallery.

Modules:

* ``inputs`` -- finding the images, naming their outputs, shards
* ``decode`` -- reading and resizing them in worker processes (NumPy, no torch)
* ``pipeline`` -- ``run_batch``: batches by input size, forward passes, the run's counts
* ``writer`` -- drawing and writing the maps in threads
* ``manifest`` -- ``manifest.jsonl`` and ``manifest.csv``
* ``gallery`` -- ``index.html``

The names below are importable from the package itself; each is loaded from its module on
first use, so importing the package costs nothing.
"""

from __future__ import annotations

from camtool._lazy import lazy_exports

_WHERE: dict[str, str] = {
    "BatchReport": "pipeline",
    "CSV_COLUMNS": "manifest",
    "Decoded": "decode",
    "FIELDS": "manifest",
    "FORMATS": "pipeline",
    "INDEX_NAME": "gallery",
    "InputItem": "inputs",
    "LOCK_NAME": "manifest",
    "MANIFEST_CSV": "manifest",
    "MANIFEST_JSONL": "manifest",
    "ManifestWriter": "manifest",
    "MapWriter": "writer",
    "OnProgress": "pipeline",
    "PROB_DIGITS": "writer",
    "Reader": "decode",
    "STATUSES": "manifest",
    "STDIN": "inputs",
    "assign_outputs": "inputs",
    "discover_inputs": "inputs",
    "finalize": "manifest",
    "latest_rows": "manifest",
    "locked": "manifest",
    "manifest_row": "manifest",
    "overlay_href": "gallery",
    "parse_shard": "inputs",
    "read_images": "decode",
    "read_rows": "manifest",
    "run_batch": "pipeline",
    "select_shard": "inputs",
    "shard_of": "inputs",
    "to_csv": "manifest",
    "write_gallery": "gallery",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)
