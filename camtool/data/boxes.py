"""Ground-truth boxes for ``camtool eval``: CSV box files and Pascal VOC / ImageNet XML files.

* **CSV**: a header naming ``path,x0,y0,x1,y1`` (any case and order, extra columns ignored), then
  one box a row. ``path`` is relative to the dataset root or absolute; boxes are 0-based with
  ``x1``/``y1`` exclusive; decimals round outwards. Images are matched by resolved path.
* **VOC XML**: ``<annotation>`` with ``<filename>``, an optional ``<size>`` and ``<object>``
  ``<bndbox>`` corners, 1-based inclusive (``x0 = xmin - 1``, clipped at 0; ``x1 = xmax``).
  Images are matched by file stem (ImageNet's val files omit the extension); boxes are rescaled
  when ``<size>`` differs from the image on disk with the same aspect ratio.

Every problem is an :class:`~camtool.errors.InputError` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from camtool.core.localize import BoxXYXY, scale_box
from camtool.data.images import IMAGE_SUFFIXES, walk_files
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
"""The box file read from the dataset root when no ``--boxes`` is given."""

BOXES_HEADER: tuple[str, ...] = ("path", "x0", "y0", "x1", "y1")
"""The columns a box file must have."""

_ASPECT_TOLERANCE = 0.02

Warn = Callable[[str], None]
"""Told one line per box clipped to its image."""


@dataclass(frozen=True)
class GtBox:
    """A ground-truth box (0-based, end exclusive), its ``origin`` (``"<file> line <n>"``) and
    the ``declared_size`` ``(width, height)`` of the image it was drawn on, if known."""

    box: BoxXYXY
    origin: str
    declared_size: tuple[int, int] | None = None


@dataclass
class GroundTruth:
    """Boxes read from ``source``, by resolved image path (CSV) and by file stem (VOC)."""

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
            InputError: no image has a box, or a VOC stem matches several images.
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


def fit_boxes(
    entries: Sequence[GtBox],
    image: Path,
    width: int,
    height: int,
    warn: Warn | None = None,
) -> list[BoxXYXY]:
    """An image's boxes in its pixels (``width`` x ``height`` on disk, EXIF-oriented): each
    clipped to the image it was drawn on (``warn`` told), then rescaled to this one.

    Raises:
        InputError: a box lies wholly outside the image, or was drawn on another shape.
    """
    boxes = []
    for entry in entries:
        b, where = entry.box, entry.origin
        dw, dh = entry.declared_size or (width, height)
        box = BoxXYXY(max(0, b.x0), max(0, b.y0), min(b.x1, dw), min(b.y1, dh))
        if box.x1 <= box.x0 or box.y1 <= box.y0:
            raise InputError(
                f"{where}: box {b.x0},{b.y0},{b.x1},{b.y1} lies wholly outside its "
                f"{dw}x{dh} image {image}"
            )
        if box != b and warn is not None:
            warn(
                f"{where}: box {b.x0},{b.y0},{b.x1},{b.y1} extends past its {dw}x{dh} image "
                f"{image}; clipped to {box.x0},{box.y0},{box.x1},{box.y1}"
            )
        if (dw, dh) != (width, height):
            if abs(dw / dh - width / height) > _ASPECT_TOLERANCE * (width / height):
                raise InputError(
                    f"{where}: the box was drawn on a {dw}x{dh} image but {image} is "
                    f"{width}x{height}, of another shape"
                )
            box = scale_box(box, (dh, dw), (height, width))
        boxes.append(box)
    return boxes


def load_boxes(spec: Path | None, root: Path) -> GroundTruth | None:
    """The boxes ``--boxes`` names (a CSV file, a VOC ``.xml`` file or a folder of them); for
    ``None``, ``<root>/boxes.csv`` if there is one. CSV paths are relative to ``root``.

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
    """A CSV box file, keyed by ``str((root / path_in_file).resolve())``.

    Raises:
        InputError: unreadable, a missing column, no box, or a row with an empty path, a bad or
            negative coordinate, or ``x1 <= x0`` / ``y1 <= y0``.
    """
    path = Path(path)
    by_path: dict[str, list[GtBox]] = {}
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
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
                where = f"{path} line {reader.line_num}"
                image, box = _csv_box(row, cols, len(names), where)
                key = str((Path(root) / image).resolve())
                by_path.setdefault(key, []).append(GtBox(box, where))
    except csv.Error as exc:
        raise InputError(f"cannot read box file {path}: {exc}") from exc
    if not by_path:
        raise InputError(f"box file {path}: it has a header but no box")
    return GroundTruth(path, by_path=by_path)


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
    """Every ``*.xml`` under ``folder`` (recursively, hidden entries skipped).

    Raises:
        InputError: a file is malformed, two files annotate the same stem, or no box is found.
    """
    folder = Path(folder)
    files = walk_files(folder, {".xml"})
    if not files:
        raise InputError(f"box folder {folder} holds no .xml annotation file")
    empty = f"box folder {folder}: its {len(files)} XML files hold no <object> box"
    return _voc_truth(folder, files, empty)


def _voc_truth(source: Path, files: list[Path], empty: str) -> GroundTruth:
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


def read_voc_file(file: Path) -> tuple[str, list[GtBox]]:
    """One VOC annotation: the image stem (``<filename>``'s, else the file's) and its boxes.

    Raises:
        InputError: malformed XML, a DTD or entity, no ``<annotation>``, a missing or bad
            coordinate, an empty box, or a box wholly outside the declared ``<size>``.
    """
    file = Path(file)
    root = parse_xml(file)
    if root.tag != "annotation":
        raise InputError(f"{file} line {root.line}: expected <annotation>, found <{root.tag}>")
    name_node = root.find("filename")
    name = name_node.value() if name_node is not None else ""
    stem = file.stem
    if name:
        base = Path(name.replace("\\", "/")).name
        stem = Path(base).stem if Path(base).suffix.lower() in IMAGE_SUFFIXES else base
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
