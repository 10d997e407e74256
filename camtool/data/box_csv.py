"""The CSV box file: ``path,x0,y0,x1,y1``, one box a row (the demo's ``boxes.csv`` and users').

The shapes dataset (:mod:`camtool.data.synthetic`) writes it; ``camtool eval`` reads it through
:func:`camtool.data.boxes.load_boxes`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from pathlib import Path

from camtool.core.localize import BoxXYXY
from camtool.errors import InputError
from camtool.textio import read_text

__all__ = ["BOXES_HEADER", "csv_rows", "read_boxes_csv"]

BOXES_HEADER: tuple[str, ...] = ("path", "x0", "y0", "x1", "y1")
"""The columns a box file must have (more columns are allowed and ignored)."""


def read_boxes_csv(path: Path, root: Path | None = None) -> dict[str, list[BoxXYXY]]:
    """Read a box file: a header naming ``path,x0,y0,x1,y1``, then one box a row.

    Several rows may name the same image. Columns are found by header name (case and
    surrounding spaces ignored), so their order is free and extra columns are ignored; blank
    lines are skipped. Coordinates may be written as decimals: ``x0``/``y0`` are rounded down
    and ``x1``/``y1`` up, so the box still covers what was marked.

    Args:
        path: the CSV file.
        root: if given, each key is ``str((root / path_in_file).resolve())``; otherwise the
            path exactly as written in the file.

    Returns:
        Image path to its boxes, in file order.

    Raises:
        InputError: the file cannot be read, lacks a column, or a row has an empty path, a
            non-numeric or negative coordinate, or ``x1 <= x0`` / ``y1 <= y0``; the message
            names the file and the line.
    """
    boxes: dict[str, list[BoxXYXY]] = {}
    for key, box, _line in csv_rows(Path(path), root):
        boxes.setdefault(key, []).append(box)
    return boxes


def csv_rows(path: Path, root: Path | None) -> Iterator[tuple[str, BoxXYXY, int]]:
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
                key = image if root is None else str((Path(root) / image).resolve())
                yield key, box, reader.line_num
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
