"""Lazy re-exports for the subpackages' ``__init__`` (PEP 562), so that importing a package is free.

``camtool --help`` must answer without importing torch; a package ``__init__`` that imported its
modules eagerly would defeat that the first time the CLI touched any module of the package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, where: Mapping[str, str]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for a package that re-exports names lazily.

    Args:
        package: the package's ``__name__``.
        where: public name -> the submodule (relative to ``package``) that defines it.

    Returns:
        The sorted public names, and the module-level ``__getattr__``/``__dir__`` that import the
        defining submodule on first access. An unknown name raises :class:`AttributeError`.
    """
    names = sorted(where)

    def getattr_(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    def dir_() -> list[str]:
        return list(names)

    return names, getattr_, dir_
