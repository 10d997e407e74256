"""Ground-truth boxes for ``camtool eval``: CSV box files and Pascal VOC / ImageNet XML files.

Two formats are read:

* **CSV** (the demo dataset's ``boxes.csv``, or a user file): a header naming
  ``path,x0,y0,x1,y1``, then one box a row, several rows per image allowed; ``path`` is relative
  to the dataset root or absolute; ``x1``/``y1`` are exclusive (0-based pixel edges). Parsing is
  :func:`camtool.data.synthetic.read_boxes_csv`; images are matched by their resolved path.
* **Pascal VOC XML** (ImageNet's ``val/*.xml`` and ``train/<wnid>/*.xml`` use it): one
  ``<annotation>`` per file with ``<filename>``, an optional ``<size>`` and one ``<object>``
  per box with ``<bndbox><xmin>...<ymax>``. VOC corners are 1-based and inclusive, so they become
  ``x0 = xmin - 1`` (clipped at 0, some ImageNet files use 0), ``x1 = xmax``. Images are matched
  by file stem, because ImageNet's val files name the image without its extension. When the file
  declares a ``<size>`` that differs from the image on disk (e.g. Imagenette's resized copies of
  ImageNet photos) the boxes are rescaled, provided the aspect ratio agrees.

XML is parsed with expat directly and no document type is allowed: a ``<!DOCTYPE`` or
``<!ENTITY`` anywhere is refused before parsing, and expat's handlers refuse them again (and any
external entity) should the text hide them, so entity expansion attacks cannot run.

Every problem is an :class:`~camtool.errors.InputError` naming the file and, where there is one,
the line.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from camtool.core.localize import BoxXYXY, scale_box
from camtool.data.images import IMAGE_SUFFIXES
from camtool.data.synthetic import BOXES_HEADER, read_boxes_csv
from camtool.errors import InputError
from camtool.textio import read_text

__all__ = [
    "BOXES_CSV",
    "MAX_XML_BYTES",
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

MAX_XML_BYTES = 16 * 1024 * 1024
"""Larger XML files are refused unread (a VOC annotation is a few kilobytes)."""

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
    """Read a ``path,x0,y0,x1,y1`` box file (see the module docstring).

    Raises:
        InputError: unreadable, a bad header or row (naming the line), or no box at all.
    """
    path = Path(path)
    raw = read_boxes_csv(path, root)
    lines = _csv_lines(path, root)
    by_path: dict[str, list[GtBox]] = {}
    for key, boxes in raw.items():
        origins = lines.get(key, [])
        by_path[key] = [
            GtBox(
                BoxXYXY(b.x0, b.y0, b.x1, b.y1),
                f"{path} line {origins[i]}" if i < len(origins) else str(path),
            )
            for i, b in enumerate(boxes)
        ]
    if not by_path:
        raise InputError(f"box file {path}: it has a header but no box")
    return GroundTruth(path, by_path=by_path)


def _csv_lines(path: Path, root: Path) -> dict[str, list[int]]:
    """Line numbers of each image's rows (the file has already been validated)."""
    lines: dict[str, list[int]] = {}
    with io.StringIO(read_text(path), newline="") as f:
        reader = csv.reader(f)
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            return lines
        column = [cell.strip().lower() for cell in header].index(BOXES_HEADER[0])
        for row in reader:
            if any(cell.strip() for cell in row):
                key = str((Path(root) / row[column].strip()).resolve())
                lines.setdefault(key, []).append(reader.line_num)
    return lines


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


@dataclass
class _Node:
    tag: str
    line: int
    children: list[_Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def find(self, tag: str) -> _Node | None:
        return next((c for c in self.children if c.tag == tag), None)

    def value(self) -> str:
        return "".join(self.text).strip()


class _Refused(Exception):
    """A document type or entity was met while parsing."""


def _parse_xml(file: Path) -> _Node:
    """Parse ``file`` into a small tree with line numbers, refusing DTDs and entities."""
    try:
        size = file.stat().st_size
        if size > MAX_XML_BYTES:
            raise InputError(f"{file}: {size} bytes is too large for an annotation file")
        data = file.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read box file {file}: {exc.strerror or exc}") from None
    upper = data.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise InputError(f"{file}: refusing XML with a DOCTYPE or ENTITY declaration")
    parser = expat.ParserCreate()
    stack: list[_Node] = []
    roots: list[_Node] = []

    def start(tag: str, _attrs: dict[str, str]) -> None:
        node = _Node(tag, parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        stack.pop()

    def text(chunk: str) -> None:
        if stack:
            stack[-1].text.append(chunk)

    def refuse(*_args: object) -> int:
        raise _Refused

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(data, True)
    except _Refused:
        raise InputError(
            f"{file} line {parser.CurrentLineNumber}: refusing XML with a DOCTYPE or ENTITY"
        ) from None
    except expat.ExpatError as exc:
        message = expat.ErrorString(exc.code) if exc.code else str(exc)
        raise InputError(f"{file} line {exc.lineno}: not well-formed XML ({message})") from None
    return roots[0]


def _number(node: _Node | None, parent: _Node, name: str, file: Path) -> float:
    if node is None:
        raise InputError(f"{file} line {parent.line}: <{parent.tag}> lacks <{name}>")
    text = node.value()
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{file} line {node.line}: <{name}> is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{file} line {node.line}: <{name}> is not finite: {text!r}")
    return value


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
    root = _parse_xml(file)
    if root.tag != "annotation":
        raise InputError(f"{file} line {root.line}: expected <annotation>, found <{root.tag}>")
    name_node = root.find("filename")
    name = name_node.value() if name_node is not None else ""
    stem = _image_stem(name) if name else file.stem
    declared: tuple[int, int] | None = None
    size = root.find("size")
    if size is not None:
        width = _number(size.find("width"), size, "width", file)
        height = _number(size.find("height"), size, "height", file)
        if width >= 1 and height >= 1:
            declared = (round(width), round(height))
    boxes: list[GtBox] = []
    for obj in (c for c in root.children if c.tag == "object"):
        bnd = obj.find("bndbox")
        if bnd is None:
            raise InputError(f"{file} line {obj.line}: <object> lacks <bndbox>")
        xmin, ymin, xmax, ymax = (
            _number(bnd.find(k), bnd, k, file) for k in ("xmin", "ymin", "xmax", "ymax")
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
