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
    "LOCK_NAME",
    "MANIFEST_CSV",
    "MANIFEST_JSONL",
    "STATUSES",
    "ManifestWriter",
    "finalize",
    "latest_rows",
    "locked",
    "manifest_row",
    "read_rows",
    "to_csv",
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
#: ``manifest.csv``'s columns: ``peak`` and ``box`` flattened, ``outputs`` joined with ``;``.
CSV_COLUMNS = (
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
    "peak_x",
    "peak_y",
    "box_x0",
    "box_y0",
    "box_x1",
    "box_y1",
    "outputs",
)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the output folder's manifest lock (:func:`camtool.process.file_lock` on
    ``.manifest.lock``), waiting for another process (shard) that holds it."""
    with file_lock(Path(directory) / LOCK_NAME):
        yield


def manifest_row(path: str, status: str, error: str | None = None, **fields: Any) -> dict[str, Any]:
    """One manifest row: every key of :data:`FIELDS`, ``None`` where not given.

    Args:
        path: the input as listed (``InputItem.path``).
        status: ``"ok"`` or ``"error"``.
        error: why the input failed (``status == "error"``).
        **fields: ``output``, ``pred_idx``, ``pred_name``, ``prob``, ``class_idx``,
            ``true_idx`` and ``true_name`` (the input's true class when the folders above it name
            one, :func:`camtool.data.labels.true_class`), ``peak``, ``box``, ``outputs``.
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
    """Appends rows to ``manifest.jsonl`` in ``directory``, one ``write`` per row."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / MANIFEST_JSONL

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one row now (durable against a crash of this process once it returns).

        Raises:
            CamtoolError: the manifest cannot be written.
        """
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
            with locked(self.directory):
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
    """Append ``data`` to ``fd`` (whose length is ``size``) completely, or not at all.

    A short write (a disk that filled up) is undone by truncating back to ``size``, so the file
    stays valid JSON Lines.

    Raises:
        OSError: the write failed (``ENOSPC`` for a short write).
    """
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


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Render rows as ``manifest.csv`` (see :data:`CSV_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        peak = row.get("peak") or [None, None]
        box = row.get("box") or [None, None, None, None]
        outputs = row.get("outputs") or []
        writer.writerow(
            [
                _cell(row.get("path")),
                _cell(row.get("output")),
                _cell(row.get("status")),
                _cell(row.get("error")),
                _cell(row.get("pred_idx")),
                _cell(row.get("pred_name")),
                _cell(row.get("prob")),
                _cell(row.get("class_idx")),
                _cell(row.get("true_idx")),
                _cell(row.get("true_name")),
                *(_cell(v) for v in peak),
                *(_cell(v) for v in box),
                ";".join(_cell(o) for o in outputs),
            ]
        )
    return buffer.getvalue()


def finalize(
    directory: Path,
    write_gallery: Callable[[Path, Sequence[Mapping[str, Any]]], Any] | None = None,
) -> list[dict[str, Any]]:
    """Compact ``manifest.jsonl`` to one row per input, then write ``manifest.csv`` and the gallery.

    Runs under the manifest lock, so a run finishing in another process (another shard) waits;
    the last to finish writes files that hold every shard's rows.

    Args:
        directory: the output folder.
        write_gallery: called as ``write_gallery(directory, rows)`` to write ``index.html``.

    Returns:
        The rows written.

    Raises:
        CamtoolError: the files cannot be written.
    """
    directory = Path(directory)
    jsonl = directory / MANIFEST_JSONL
    try:
        with locked(directory):
            rows = list(latest_rows(jsonl).values())
            atomic_write_bytes(jsonl, b"".join(_line(row) for row in rows))
            csv_bytes = to_csv(rows).encode("utf-8")
            atomic_write_bytes(directory / MANIFEST_CSV, csv_bytes)
            if write_gallery is not None:
                write_gallery(directory, rows)
    except OSError as exc:
        raise CamtoolError(
            f"cannot write the manifest in {directory}: {exc.strerror or exc}"
        ) from None
    return rows
