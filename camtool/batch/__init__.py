"""Explaining whole folders (``camtool batch-cam``): inputs, the streaming pipeline, manifest,
gallery.

Modules:

* ``gallery``
* ``inputs``
* ``manifest``
* ``pipeline``

The names below are importable from the package itself; each is loaded from its module on
first use, so importing the package costs nothing.
"""

from __future__ import annotations

from camtool._lazy import lazy_exports

_WHERE: dict[str, str] = {
    "BOX_THRESHOLD": "pipeline",
    "BatchProgress": "pipeline",
    "BatchReport": "pipeline",
    "CSV_COLUMNS": "manifest",
    "FIELDS": "manifest",
    "FORMATS": "pipeline",
    "INDEX_NAME": "gallery",
    "InputItem": "inputs",
    "LOCK_NAME": "manifest",
    "MANIFEST_CSV": "manifest",
    "MANIFEST_JSONL": "manifest",
    "ManifestWriter": "manifest",
    "STATUSES": "gallery",
    "STDIN": "inputs",
    "assign_outputs": "inputs",
    "discover_inputs": "inputs",
    "finalize": "manifest",
    "latest_rows": "manifest",
    "locked": "manifest",
    "overlay_href": "gallery",
    "parse_shard": "inputs",
    "read_rows": "manifest",
    "run_batch": "pipeline",
    "select_shard": "inputs",
    "shard_of": "inputs",
    "to_csv": "manifest",
    "write_gallery": "gallery",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)
