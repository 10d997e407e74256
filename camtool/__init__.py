"""camtool: train an image classifier and show where it looks, with Class Activation Mapping.

Importing this package is cheap: heavy dependencies (torch, torchvision, matplotlib) are imported
only by the modules that need them, so that ``camtool --help`` answers instantly.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
