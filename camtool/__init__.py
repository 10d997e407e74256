"""camtool: train an image classifier and show where it looks, with Class Activation Mapping.

The Python API is :func:`load_model`, which returns a :class:`CamModel` whose
:meth:`~CamModel.explain` gives logits, probabilities and maps as NumPy arrays (see
:mod:`camtool.api`). The command line is ``camtool`` (:mod:`camtool.cli`).

Importing this package is cheap: heavy dependencies (torch, torchvision, matplotlib) are imported
only by the modules that need them, so that ``camtool --help`` answers instantly.
"""

from camtool._lazy import lazy_exports

__version__ = "0.1.0"

_WHERE = {"CamModel": "api", "Explanation": "api", "load_model": "api"}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)
__all__ = [*__all__, "__version__"]
