"""camtool: train an image classifier and show where it looks, with Class Activation Mapping.

The Python API is :func:`load_model` (:mod:`camtool.api`, loaded on first use); the CLI is
``camtool``. Importing this package is cheap: no torch, torchvision or matplotlib.
"""

from __future__ import annotations

from typing import Any

from camtool.version import __version__

__all__ = ["CamModel", "Explanation", "__version__", "load_model"]


def __getattr__(name: str) -> Any:
    if name in ("CamModel", "Explanation", "load_model"):
        from camtool import api

        return getattr(api, name)
    raise AttributeError(f"module 'camtool' has no attribute {name!r}")
