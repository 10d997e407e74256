"""An input's true class, from the folder it sits in: a class name or an Imagenette WordNet id
whose :data:`~camtool.core.imagenet.IMAGENETTE_CLASSES` name is one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath

from camtool.core.imagenet import IMAGENETTE_CLASSES

__all__ = ["folder_class", "true_class"]


def folder_class(folder: str, class_names: Sequence[str]) -> int | None:
    """The index in ``class_names`` of the class named ``folder`` (exactly) or by the Imagenette
    id ``folder``; ``None`` when it names none."""
    for name in (folder, IMAGENETTE_CLASSES.get(folder)):
        if name is not None and name in class_names:
            return list(class_names).index(name)
    return None


def true_class(path: str | PurePath, class_names: Sequence[str]) -> int | None:
    """The class of the nearest folder in ``path`` (as given, not resolved) that names one
    (:func:`folder_class`), or ``None``."""
    for folder in reversed(PurePath(path).parts[:-1]):
        found = folder_class(folder, class_names)
        if found is not None:
            return found
    return None
