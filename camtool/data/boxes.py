"""Ground-truth boxes for ``camtool eval``: CSV box files and Pascal VOC / ImageNet XML files.

Two formats are read:

* **CSV** (the demo dataset's ``boxes.csv``, or a user file): a header naming
  ``path,x0,y0,x1,y1``, then one box a row, several rows per image allowed; ``path`` is relative
  to the dataset root or absolute; ``x1``/``y1`` are exclusive (0-based pixel edges); see
  :func:`camtool.data.box_csv.read_boxes_csv`. Images are matched by their resolved path.
* **Pascal VOC XML** (ImageNet's ``val/*.xml`` and ``train/<wnid>/*.xml`` use it): one
  ``<annotation>`` per file with ``<filename>``, an optional ``<size>`` and one ``<object>``
  per box with ``<bndbox><xmin>...<ymax>``. VOC corners are 1-based and inclusive, so they become
  ``x0 = xmin - 1`` (clipped at 0, some ImageNet files use 0), ``x1 = xmax``. Images are matched
  by file stem, because ImageNet's val files name the image without its extension. When the file
  declares a ``<size>`` that differs from the image on disk (e.g. Imagenette's resized copies of
  ImageNet photos) the boxes are rescaled, provided the aspect ratio agrees.

XML is parsed by :mod:`camtool.data.safe_xml`, which refuses document types and entities.

Every problem is an :class:`~camtool.errors.InputError` naming the file and, where there is one,
the line.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from camtool.core.localize import BoxXYXY, scale_box
from camtool.data.box_csv import csv_rows
from camtool.data.images import IMAGE_SUFFIXES
from camtool.data.safe_xml import number, parse_xml
from camtool.errors import InputError

__all__ = [
    "BOXES_CSV",
    "GroundTruth",
    "GtBox",
    "Warn",
    "clip_box",
    "fit_boxes",
    "load_boxes",
    "read_csv_boxes",
    "read_voc_dir",
    "read_voc_file",
]

BOXES_CSV = "boxes.csv"
"""The box file looked for at the dataset root when no ``--boxes`` is given."""

_ASPECT_TOLERANCE = 0.02

Warn = Callable[[str], None]
"""Told one line per box clipped to its image."""


@dataclass(frozen=True)
class GtBox:
    """One ground-truth box and where it came from.

    Attributes:
        box: the box, 0-based, end exclusive.
        origin: ``"<file> line <n>"``, for messages.
        declared_size: ``(width, height)`` of the image the box was drawn on, if the file says;
            boxes are rescaled when the image on disk has another size.
    """

    box: BoxXYXY
    origin: str
    declared_size: tuple[int, int] | None = None


@dataclass
class GroundTruth:
    """Boxes of many images, found by image path or by file stem.

    Attributes:
        source: the file or folder the boxes were read from.
        by_path: resolved absolute image path to its boxes (CSV files).
        by_stem: image file stem to its boxes (VOC XML files).
    """

    source: Path
    by_path: dict[str, list[GtBox]] = field(default_factory=dict)
    by_stem: dict[str, list[GtBox]] = field(default_factory=dict)

    @property
    def n_boxes(self) -> int:
        """Number of boxes held."""
        return sum(map(len, self.by_path.values())) + sum(map(len, self.by_stem.values()))

    def match(self, images: Sequence[Path]) -> list[list[GtBox] | None]:
        """The boxes of each image (``None`` where it has none).

        Args:
            images: image files, e.g. the samples of one split.

        Returns:
            One entry per image, in order.

        Raises:
            InputError: no image has a box, or a stem matches several images (VOC boxes only
                name a file, so two images with that stem cannot be told apart).
        """
        found: list[list[GtBox] | None] = []
        stem_users: dict[str, Path] = {}
        for image in images:
            boxes = self.by_path.get(str(Path(image).resolve())) if self.by_path else None
            if boxes is None and self.by_stem:
                stem = Path(image).stem
                boxes = self.by_stem.get(stem)
                if boxes is not None:
                    if stem in stem_users:
                        raise InputError(
                            f"box file {self.source}: {boxes[0].origin} names {stem!r}, which "
                            f"matches both {stem_users[stem]} and {image}; use a CSV box file "
                            "with image paths instead"
                        )
                    stem_users[stem] = Path(image)
            found.append(boxes)
        if not any(b is not None for b in found):
            raise InputError(
                f"box file {self.source}: none of its {self.n_boxes} boxes names any of the "
                f"{len(images)} images evaluated (CSV paths are relative to the dataset root)"
            )
        return found


def clip_box(
    box: BoxXYXY, width: int, height: int, where: str, image: str, warn: Warn | None
) -> BoxXYXY:
    """``box`` clipped to a ``width`` x ``height`` image, with a warning if that changed it.

    Labelling tools often draw a box a few pixels past the image edge; such a box is clipped
    (and ``warn`` told, naming ``where`` it came from). A box with nothing inside the image is
    refused.

    Raises:
        InputError: the box lies wholly outside the image.
    """
    clipped = BoxXYXY(max(0, box.x0), max(0, box.y0), min(box.x1, width), min(box.y1, height))
    if clipped.x1 <= clipped.x0 or clipped.y1 <= clipped.y0:
        raise InputError(
            f"{where}: box {box.x0},{box.y0},{box.x1},{box.y1} lies wholly outside its "
            f"{width}x{height} image {image}"
        )
    if clipped != box and warn is not None:
        warn(
            f"{where}: box {box.x0},{box.y0},{box.x1},{box.y1} extends past its {width}x{height}"
            f" image {image}; clipped to {clipped.x0},{clipped.y0},{clipped.x1},{clipped.y1}"
        )
    return clipped


def fit_boxes(
    entries: Sequence[GtBox],
    image: Path,
    width: int,
    height: int,
    warn: Warn | None = None,
) -> list[BoxXYXY]:
    """Check an image's boxes against its size, rescaling those drawn on another size.

    Boxes are first clipped to the image they were drawn on (the declared size, else this
    one), see :func:`clip_box`, then rescaled if that size differs from this image's.

    Args:
        entries: the image's boxes.
        image: the image file (for messages).
        width: the image's width on disk (after EXIF orientation).
        height: its height.
        warn: told one line for each box that had to be clipped.

    Returns:
        The boxes in the image's pixel coordinates.

    Raises:
        InputError: a box lies wholly outside the image, or was drawn on an image of another
            shape.
    """
    boxes = []
    for entry in entries:
        declared = entry.declared_size
        frame = declared or (width, height)
        box = clip_box(entry.box, *frame, entry.origin, str(image), warn)
        if declared is not None and declared != (width, height):
            dw, dh = declared
            if abs(dw / dh - width / height) > _ASPECT_TOLERANCE * (width / height):
                raise InputError(
                    f"{entry.origin}: the box was drawn on a {dw}x{dh} image but {image} is "
                    f"{width}x{height}, of another shape"
                )
            box = scale_box(box, (dh, dw), (height, width))
        boxes.append(box)
    return boxes


def load_boxes(spec: Path | None, root: Path) -> GroundTruth | None:
    """Read the boxes ``--boxes`` names, or the dataset's own ``boxes.csv``.

    Args:
        spec: a CSV file, one VOC ``.xml`` file, a folder of VOC files, or ``None`` for
            ``<root>/boxes.csv`` when it exists.
        root: the dataset root (CSV paths are relative to it).

    Returns:
        The boxes, or ``None`` when ``spec`` is ``None`` and the dataset has no box file.

    Raises:
        InputError: the file or folder is missing or malformed.
    """
    if spec is None:
        default = Path(root) / BOXES_CSV
        return read_csv_boxes(default, root) if default.is_file() else None
    spec = Path(spec)
    if spec.is_dir():
        return read_voc_dir(spec)
    if not spec.exists():
        raise InputError(f"box file not found: {spec}")
    if spec.suffix.lower() == ".xml":
        gt = GroundTruth(spec)
        _add_voc(gt, spec)
        if not gt.by_stem:
            raise InputError(f"box file {spec}: it holds no <object> box")
        return gt
    return read_csv_boxes(spec, root)


def read_csv_boxes(path: Path, root: Path) -> GroundTruth:
    """A CSV box file (:func:`~camtool.data.box_csv.read_boxes_csv`) as ``eval``'s
    :class:`GroundTruth`, each box naming its line.

    Raises:
        InputError: as :func:`~camtool.data.box_csv.read_boxes_csv`; or the file holds no box.
    """
    path = Path(path)
    by_path: dict[str, list[GtBox]] = {}
    for key, box, line in csv_rows(path, root):
        by_path.setdefault(key, []).append(GtBox(box, f"{path} line {line}"))
    if not by_path:
        raise InputError(f"box file {path}: it has a header but no box")
    return GroundTruth(path, by_path=by_path)


def read_voc_dir(folder: Path) -> GroundTruth:
    """Read every ``*.xml`` under ``folder`` (recursively, hidden entries skipped).

    Raises:
        InputError: a file is malformed, two files annotate the same stem, or no box is found.
    """
    folder = Path(folder)
    gt = GroundTruth(folder)
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(
            Path(dirpath, n)
            for n in sorted(filenames)
            if n.lower().endswith(".xml") and not n.startswith(".")
        )
    if not files:
        raise InputError(f"box folder {folder} holds no .xml annotation file")
    for file in files:
        _add_voc(gt, file)
    if not gt.by_stem:
        raise InputError(f"box folder {folder}: its {len(files)} XML files hold no <object> box")
    return gt


def _add_voc(gt: GroundTruth, file: Path) -> None:
    stem, boxes = read_voc_file(file)
    if not boxes:
        return
    if stem in gt.by_stem:
        raise InputError(
            f"{boxes[0].origin}: image {stem!r} is annotated twice "
            f"(also in {gt.by_stem[stem][0].origin})"
        )
    gt.by_stem[stem] = boxes


def _image_stem(name: str) -> str:
    base = Path(name.replace("\\", "/")).name
    path = Path(base)
    return path.stem if path.suffix.lower() in IMAGE_SUFFIXES else base


def read_voc_file(file: Path) -> tuple[str, list[GtBox]]:
    """Read one Pascal VOC / ImageNet annotation.

    Args:
        file: the ``.xml`` file.

    Returns:
        ``(stem, boxes)``: the stem of the image it annotates (from ``<filename>``, else the XML
        file's own stem) and its boxes, 0-based with exclusive ends.

    Raises:
        InputError: not well-formed, a DTD or entity, not an ``<annotation>``, a missing or
            non-numeric coordinate, an empty box, or a box wholly outside the declared ``<size>``;
            the message names the file and line.
    """
    file = Path(file)
    root = parse_xml(file)
    if root.tag != "annotation":
        raise InputError(f"{file} line {root.line}: expected <annotation>, found <{root.tag}>")
    name_node = root.find("filename")
    name = name_node.value() if name_node is not None else ""
    stem = _image_stem(name) if name else file.stem
    declared: tuple[int, int] | None = None
    size = root.find("size")
    if size is not None:
        width = number(size.find("width"), size, "width", file)
        height = number(size.find("height"), size, "height", file)
        if width >= 1 and height >= 1:
            declared = (round(width), round(height))
    boxes: list[GtBox] = []
    for obj in (c for c in root.children if c.tag == "object"):
        bnd = obj.find("bndbox")
        if bnd is None:
            raise InputError(f"{file} line {obj.line}: <object> lacks <bndbox>")
        xmin, ymin, xmax, ymax = (
            number(bnd.find(k), bnd, k, file) for k in ("xmin", "ymin", "xmax", "ymax")
        )
        box = BoxXYXY(
            max(0, math.floor(xmin - 1)),
            max(0, math.floor(ymin - 1)),
            math.ceil(xmax),
            math.ceil(ymax),
        )
        where = f"{file} line {bnd.line}"
        if box.x1 <= box.x0 or box.y1 <= box.y0:
            raise InputError(f"{where}: empty box ({xmin:g},{ymin:g},{xmax:g},{ymax:g})")
        if declared is not None and (box.x0 >= declared[0] or box.y0 >= declared[1]):
            raise InputError(
                f"{where}: box ({xmin:g},{ymin:g},{xmax:g},{ymax:g}) lies wholly outside the "
                f"{declared[0]}x{declared[1]} image"
            )
        boxes.append(GtBox(box, where, declared))  # partly outside: clipped by fit_boxes
    return stem, boxes
