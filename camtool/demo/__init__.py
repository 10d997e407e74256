"""The offline demo: generated shapes, a model trained from scratch, maps and their scores.

Modules:

* ``pipeline``

The names below are importable from the package itself; each is loaded from its module on
first use, so importing the package costs nothing.
"""

from __future__ import annotations

from camtool._lazy import lazy_exports

_WHERE: dict[str, str] = {
    "DEMO_DEFAULTS": "pipeline",
    "DemoConfig": "pipeline",
    "DemoReport": "pipeline",
    "demo_settings": "pipeline",
    "draw_demo_data": "pipeline",
    "run_demo": "pipeline",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)
