"""An input's true class, read from the folder it sits in.

A labelled image lives in a folder named after its class, as in the ImageFolder layout
(``val/<class>/...``). A folder names class ``i`` of a model when its name is the model's
``i``-th class name, or when it is an Imagenette WordNet id whose readable name
(:data:`camtool.core.imagenet.IMAGENETTE_CLASSES`) is that class name: a model trained on
Imagenette calls its classes "tench", "English springer" ... while the folders are
``n01440764`` ...
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath

from camtool.core.imagenet import IMAGENETTE_CLASSES

__all__ = ["folder_class", "true_class"]


def folder_class(folder: str, class_names: Sequence[str]) -> int | None:
    """The index in ``class_names`` (a model's, in class-index order) of the class named
    ``folder`` (one folder name, exactly, case included) or by the Imagenette id ``folder``;
    ``None`` when it names none of them."""
    for name in (folder, IMAGENETTE_CLASSES.get(folder)):
        if name is not None and name in class_names:
            return list(class_names).index(name)
    return None


def true_class(path: str | PurePath, class_names: Sequence[str]) -> int | None:
    """The class index of an image file from the nearest folder above it named like a class
    (:func:`folder_class`), or ``None`` when none does.

    Only the folders of ``path`` as given are looked at (it is not resolved), nearest first,
    so ``val/dog/sub/a.jpg`` is a dog and ``photos/a.jpg`` has no known class.
    """
    for folder in reversed(PurePath(path).parts[:-1]):
        found = folder_class(folder, class_names)
        if found is not None:
            return found
    return None
