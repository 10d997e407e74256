"""batch-cam's manifest: ``manifest.jsonl`` appended row by row, ``manifest.csv`` at the end.

``manifest.jsonl`` is written as rows complete, one JSON object per line, each line in a single
``write`` on a file opened for appending, under an advisory lock, so that several processes
(``--shard``) can share one output folder. A line cut short by a kill is ignored when reading
and never glued to the next one. At the end of a run :func:`finalize` rewrites the file with one
row per input (the latest) and regenerates ``manifest.csv`` and the gallery from it, atomically.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from camtool.errors import CamtoolError
from camtool.fsutil import atomic_write_bytes
from camtool.process import file_lock
from camtool.textio import to_json, unicode_text

__all__ = [
    "CSV_COLUMNS",
    "FIELDS",
    "MANIFEST_CSV",
    "MANIFEST_JSONL",
    "STATUSES",
    "ManifestWriter",
    "finalize",
    "latest_rows",
    "manifest_row",
    "read_rows",
]

MANIFEST_JSONL = "manifest.jsonl"
MANIFEST_CSV = "manifest.csv"
LOCK_NAME = ".manifest.lock"

#: The values of a row's ``status``: the input's maps are written, or it failed (see ``error``).
STATUSES = ("ok", "error")
#: The keys of every row, in order.
FIELDS = (
    "path",
    "output",
    "status",
    "error",
    "pred_idx",
    "pred_name",
    "prob",
    "class_idx",
    "true_idx",
    "true_name",
    "peak",
    "box",
    "outputs",
)
#: ``manifest.csv``'s columns (:data:`FIELDS` with ``peak`` and ``box`` flattened).
_FLAT = {"peak": ("peak_x", "peak_y"), "box": ("box_x0", "box_y0", "box_x1", "box_y1")}
CSV_COLUMNS = tuple(column for key in FIELDS for column in _FLAT.get(key, (key,)))


def manifest_row(path: str, status: str, error: str | None = None, **fields: Any) -> dict[str, Any]:
    """One manifest row: every key of :data:`FIELDS`, ``None`` where not given.

    ``path`` is ``InputItem.path``, ``status`` one of :data:`STATUSES`, ``error`` the reason of
    an ``error`` row; ``true_idx`` and ``true_name`` (in ``fields``) are the input's true class
    when the folders above it name one (:func:`camtool.data.labels.true_class`).
    """
    row: dict[str, Any] = dict.fromkeys(FIELDS)
    row.update(path=path, status=status, error=error, **fields)
    return row


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a ``manifest.jsonl``; lines that are not a JSON object are skipped.

    A missing file has no rows. A row whose status is ``skipped`` (earlier versions recorded a
    resumed run's skips in the manifest) is read as ``ok``: an earlier run wrote its maps.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; bytes so bad UTF-8 is skipped
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            try:
                row = json.loads(line.decode("utf-8", "surrogateescape"))
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("path"), str):
                if row.get("status") == "skipped":
                    row["status"] = "ok"
                yield row


def latest_rows(path: Path) -> dict[str, dict[str, Any]]:
    """The latest row of each input path, in the order the paths first appeared.

    A row whose ``output`` a later row (of another spelling of the same input's path, e.g.
    relative then absolute) wrote again is dropped: each output has one row.
    """
    rows: dict[str, dict[str, Any]] = {}
    writer: dict[str, str] = {}  # output -> path of the latest row that wrote it
    for row in read_rows(path):
        rows[row["path"]] = row
        if isinstance(row.get("output"), str):
            writer[row["output"]] = row["path"]
    return {
        key: row
        for key, row in rows.items()
        if not isinstance(row.get("output"), str) or writer[row["output"]] == key
    }


def _line(row: Mapping[str, Any]) -> bytes:
    ordered = {key: row.get(key) for key in FIELDS}
    ordered.update({k: v for k, v in row.items() if k not in ordered})
    return to_json(ordered, indent=None, ensure_ascii=False).encode("utf-8") + b"\n"


class ManifestWriter:
    """Appends rows to ``manifest.jsonl`` in ``directory``, each call in one ``write``.

    Once a call returns its rows survive a crash of this process.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / MANIFEST_JSONL

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one row (raises as :meth:`append_many`)."""
        self.append_many([row])

    def append_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append several rows in one write.

        Raises:
            CamtoolError: the manifest cannot be written.
        """
        data = b"".join(_line(row) for row in rows)
        if not data:
            return
        try:
            with file_lock(self.directory / LOCK_NAME):
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    size = os.fstat(fd).st_size
                    if size and os.pread(fd, 1, size - 1) != b"\n":
                        data = b"\n" + data  # a line cut short by a kill stays on its own
                    _write_whole(fd, data, size)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise CamtoolError(f"cannot write {self.path}: {exc.strerror or exc}") from None


def _write_whole(fd: int, data: bytes, size: int) -> None:
    """Append ``data`` to ``fd`` (of length ``size``) whole, or truncate back to ``size``."""
    try:
        written = os.write(fd, data)
        while 0 < written < len(data):
            written += os.write(fd, data[written:])
        if written < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return unicode_text(str(value))


def _csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as ``manifest.csv`` (see :data:`CSV_COLUMNS`; ``outputs`` joined with ``;``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        cells: list[str] = []
        for key in FIELDS:
            value = row.get(key)
            if key in _FLAT:
                cells.extend(_cell(v) for v in value or [None] * len(_FLAT[key]))
            elif key == "outputs":
                cells.append(";".join(_cell(o) for o in value or []))
            else:
                cells.append(_cell(value))
        writer.writerow(cells)
    return buffer.getvalue()


def finalize(
    directory: Path,
    write_gallery: Callable[[Path, Sequence[Mapping[str, Any]]], Any] | None = None,
) -> list[dict[str, Any]]:
    """Compact ``manifest.jsonl`` to one row per input, then write ``manifest.csv`` and the gallery
    (``write_gallery(directory, rows)``); returns the rows written.

    Runs under the manifest lock, so a run finishing in another process (another shard) waits;
    the last to finish writes files that hold every shard's rows.

    Raises:
        CamtoolError: the files cannot be written.
    """
    directory = Path(directory)
    jsonl = directory / MANIFEST_JSONL
    try:
        with file_lock(directory / LOCK_NAME):
            rows = list(latest_rows(jsonl).values())
            atomic_write_bytes(jsonl, b"".join(_line(row) for row in rows))
            atomic_write_bytes(directory / MANIFEST_CSV, _csv(rows).encode("utf-8"))
            if write_gallery is not None:
                write_gallery(directory, rows)
    except OSError as exc:
        raise CamtoolError(
            f"cannot write the manifest in {directory}: {exc.strerror or exc}"
        ) from None
    return rows
