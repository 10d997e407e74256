"""Ground-truth boxes for ``camtool eval``: CSV box files and Pascal VOC / ImageNet XML files.

Two formats are read; every problem is an :class:`~camtool.errors.InputError` naming the file
and, where there is one, the line.

* **CSV** (the demo dataset's ``boxes.csv``, written by :mod:`camtool.data.synthetic`, or a
  user file): a header naming ``path,x0,y0,x1,y1`` (:data:`BOXES_HEADER`; case, surrounding
  spaces and column order free, extra columns ignored), then one box a row, several rows per
  image allowed, blank lines skipped. ``path`` is relative to the dataset root or absolute;
  ``x1``/``y1`` are exclusive (0-based pixel edges). Decimals are allowed: ``x0``/``y0`` are
  rounded down and ``x1``/``y1`` up, so the box still covers what was marked. Images are
  matched by their resolved path.
* **Pascal VOC XML** (ImageNet's ``val/*.xml`` and ``train/<wnid>/*.xml`` use it): one
  ``<annotation>`` per file with ``<filename>``, an optional ``<size>`` and one ``<object>``
  per box with ``<bndbox><xmin>...<ymax>``. VOC corners are 1-based and inclusive, so they become
  ``x0 = xmin - 1`` (clipped at 0, some ImageNet files use 0), ``x1 = xmax``. Images are matched
  by file stem, because ImageNet's val files name the image without its extension. When the file
  declares a ``<size>`` that differs from the image on disk (e.g. Imagenette's resized copies of
  ImageNet photos) the boxes are rescaled, provided the aspect ratio agrees. XML is parsed by
  :mod:`camtool.data.safe_xml`, which refuses document types and entities.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from camtool.core.localize import BoxXYXY, scale_box
from camtool.data.images import IMAGE_SUFFIXES
from camtool.data.safe_xml import number, parse_xml
from camtool.errors import InputError
from camtool.textio import read_text

__all__ = [
    "BOXES_CSV",
    "BOXES_HEADER",
    "GroundTruth",
    "GtBox",
    "Warn",
    "fit_boxes",
    "load_boxes",
    "read_csv_boxes",
    "read_voc_dir",
    "read_voc_file",
]

BOXES_CSV = "boxes.csv"
"""The box file looked for at the dataset root when no ``--boxes`` is given."""

BOXES_HEADER: tuple[str, ...] = ("path", "x0", "y0", "x1", "y1")
"""The columns a box file must have (more columns are allowed and ignored)."""

_ASPECT_TOLERANCE = 0.02

Warn = Callable[[str], None]
"""Told one line per box clipped to its image."""


@dataclass(frozen=True)
class GtBox:
    """One ground-truth box (0-based, end exclusive), its ``origin`` (``"<file> line <n>"``, for
    messages) and the ``declared_size`` ``(width, height)`` of the image it was drawn on, if the
    file says (boxes are rescaled when the image on disk has another size)."""

    box: BoxXYXY
    origin: str
    declared_size: tuple[int, int] | None = None


@dataclass
class GroundTruth:
    """Boxes of many images, read from ``source``: ``by_path`` maps a resolved absolute image
    path to its boxes (CSV files), ``by_stem`` an image file stem (VOC XML files)."""

    source: Path
    by_path: dict[str, list[GtBox]] = field(default_factory=dict)
    by_stem: dict[str, list[GtBox]] = field(default_factory=dict)

    @property
    def n_boxes(self) -> int:
        """Number of boxes held."""
        return sum(map(len, self.by_path.values())) + sum(map(len, self.by_stem.values()))

    def match(self, images: Sequence[Path]) -> list[list[GtBox] | None]:
        """The boxes of each image, in order (``None`` where it has none).

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


def _clip(
    box: BoxXYXY, width: int, height: int, where: str, image: str, warn: Warn | None
) -> BoxXYXY:
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
    """An image's boxes in its pixel coordinates (``width`` x ``height`` on disk, after EXIF
    orientation).

    Each box is first clipped to the image it was drawn on (the declared size, else this one;
    labelling tools often draw a few pixels past the edge), ``warn`` told one line for each box
    clipped, then rescaled if that size differs from this image's.

    Raises:
        InputError: a box lies wholly outside the image, or was drawn on an image of another
            shape.
    """
    boxes = []
    for entry in entries:
        declared = entry.declared_size
        frame = declared or (width, height)
        box = _clip(entry.box, *frame, entry.origin, str(image), warn)
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
    """Read the boxes ``--boxes`` names: a CSV file, one VOC ``.xml`` file or a folder of them;
    for ``None``, the dataset's own ``<root>/boxes.csv`` (``None`` when there is none). CSV
    paths are relative to the dataset ``root``.

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
        return _voc_truth(spec, [spec], f"box file {spec}: it holds no <object> box")
    return read_csv_boxes(spec, root)


def read_csv_boxes(path: Path, root: Path) -> GroundTruth:
    """A CSV box file as ``eval``'s :class:`GroundTruth`, each box naming its line; image keys
    are ``str((root / path_in_file).resolve())``.

    Raises:
        InputError: the file cannot be read, lacks a column, holds no box, or a row has an empty
            path, a non-numeric or negative coordinate, or ``x1 <= x0`` / ``y1 <= y0``; the
            message names the file and the line.
    """
    path = Path(path)
    by_path: dict[str, list[GtBox]] = {}
    for key, box, line in _csv_rows(path, root):
        by_path.setdefault(key, []).append(GtBox(box, f"{path} line {line}"))
    if not by_path:
        raise InputError(f"box file {path}: it has a header but no box")
    return GroundTruth(path, by_path=by_path)


def _csv_rows(path: Path, root: Path) -> Iterator[tuple[str, BoxXYXY, int]]:
    """Each box of a box file with its image key and its line number."""
    text = read_text(path)  # UTF-8 with or without a BOM, or BOM-marked UTF-16
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            raise InputError(f"{path}: empty box file; expected a header {','.join(BOXES_HEADER)}")
        names = [cell.strip().lower() for cell in header]
        missing = [col for col in BOXES_HEADER if col not in names]
        if missing:
            raise InputError(
                f"{path} line {reader.line_num}: header lacks {', '.join(missing)}; "
                f"expected {','.join(BOXES_HEADER)}"
            )
        cols = [names.index(col) for col in BOXES_HEADER]
        for row in reader:
            if any(cell.strip() for cell in row):
                image, box = _csv_box(row, cols, len(names), f"{path} line {reader.line_num}")
                yield str((Path(root) / image).resolve()), box, reader.line_num
    except csv.Error as exc:
        raise InputError(f"cannot read box file {path}: {exc}") from exc


def _csv_box(row: list[str], cols: list[int], width: int, where: str) -> tuple[str, BoxXYXY]:
    if len(row) < width:
        raise InputError(f"{where}: {len(row)} columns, expected {width}")
    image = row[cols[0]].strip()
    if not image:
        raise InputError(f"{where}: empty path")
    x0, y0, x1, y1 = (
        _coordinate(row[c], BOXES_HEADER[k + 1], where, k >= 2) for k, c in enumerate(cols[1:])
    )
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"{where}: empty box, need x1 > x0 and y1 > y0 (got {x0},{y0},{x1},{y1})")
    return image, BoxXYXY(x0, y0, x1, y1)


def _coordinate(text: str, name: str, where: str, upper: bool) -> int:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: {name} is not a number: {text.strip()!r}") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{where}: {name} must be a finite number >= 0, got {text.strip()!r}")
    return math.ceil(value) if upper else math.floor(value)


def read_voc_dir(folder: Path) -> GroundTruth:
    """Read every ``*.xml`` under ``folder`` (recursively, hidden entries skipped).

    Raises:
        InputError: a file is malformed, two files annotate the same stem, or no box is found.
    """
    folder = Path(folder)
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
    empty = f"box folder {folder}: its {len(files)} XML files hold no <object> box"
    return _voc_truth(folder, files, empty)


def _voc_truth(source: Path, files: list[Path], empty: str) -> GroundTruth:
    """The boxes of VOC ``files``; ``empty`` is the error when none holds a box."""
    gt = GroundTruth(source)
    for file in files:
        stem, boxes = read_voc_file(file)
        if boxes and stem in gt.by_stem:
            raise InputError(
                f"{boxes[0].origin}: image {stem!r} is annotated twice "
                f"(also in {gt.by_stem[stem][0].origin})"
            )
        if boxes:
            gt.by_stem[stem] = boxes
    if not gt.by_stem:
        raise InputError(empty)
    return gt


def _image_stem(name: str) -> str:
    base = Path(name.replace("\\", "/")).name
    path = Path(base)
    return path.stem if path.suffix.lower() in IMAGE_SUFFIXES else base


def read_voc_file(file: Path) -> tuple[str, list[GtBox]]:
    """Read one Pascal VOC / ImageNet annotation: ``(stem, boxes)``, the stem of the image it
    annotates (from ``<filename>``, else the XML file's own stem) and its boxes, 0-based with
    exclusive ends.

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
