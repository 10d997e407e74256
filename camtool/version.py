"""camtool's version: a module of its own, so that any module can name it without importing the
package's public face (which loads :mod:`camtool.api`)."""

__version__ = "0.1.0"
