"""camtool's version, importable without :mod:`camtool.api`."""

__version__ = "0.1.0"
