"""camtool: train an image classifier and show where it looks, with Class Activation Mapping.

The Python API is :func:`load_model`, which returns a :class:`CamModel` whose
:meth:`~CamModel.explain` gives logits, probabilities and maps as NumPy arrays (see
:mod:`camtool.api`). The command line is ``camtool`` (:mod:`camtool.cli`).

Importing this package is cheap: heavy dependencies (torch, torchvision, matplotlib) are imported
only by the modules that need them, so that ``camtool --help`` answers instantly; the three API
names load :mod:`camtool.api` on first use (PEP 562).
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
