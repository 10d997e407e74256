"""Explaining single images: maps written as figures, overlays and arrays (``camtool cam``).

Modules:

* ``files``
* ``job``
* ``render``

The names below are importable from the package itself; each is loaded from its module on
first use, so importing the package costs nothing.
"""

from __future__ import annotations

from camtool._lazy import lazy_exports

_WHERE: dict[str, str] = {
    "CamOptions": "files",
    "CamReport": "job",
    "ImageResult": "files",
    "MapFiles": "files",
    "Prediction": "files",
    "colorize": "render",
    "colormap_names": "render",
    "encode_image": "render",
    "explain_file": "files",
    "figure_png": "render",
    "map_paths": "files",
    "overlay": "render",
    "predictions": "files",
    "run_cam": "job",
    "save_image": "render",
    "unique_stem": "job",
    "write_maps": "files",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)
