"""batch-cam's rows: maps drawn in writer threads, ``manifest.jsonl`` appended, ``manifest.csv``.

Each append is one ``write`` under an advisory lock, so ``--shard`` processes can share a folder;
a line cut short by a kill is ignored and never glued to the next. :func:`finalize` rewrites the
file with each input's latest row and regenerates ``manifest.csv`` and the gallery, atomically."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from camtool.batch.inputs import InputItem
from camtool.core.maps import CAMBatch
from camtool.core.runner import ModelInfo
from camtool.data.labels import true_class
from camtool.errors import CamtoolError
from camtool.explain.files import CamOptions, located_maps
from camtool.fsutil import atomic_write_bytes, writing
from camtool.process import file_lock
from camtool.textio import to_json, unicode_text

__all__ = [
    "CSV_COLUMNS",
    "FIELDS",
    "MANIFEST_CSV",
    "MANIFEST_JSONL",
    "PROB_DIGITS",
    "STATUSES",
    "ManifestWriter",
    "MapWriter",
    "finalize",
    "latest_rows",
    "manifest_row",
    "read_rows",
]

MANIFEST_JSONL = "manifest.jsonl"
MANIFEST_CSV = "manifest.csv"
LOCK_NAME = ".manifest.lock"
#: Decimals kept of a probability in the manifest (0.01 percentage point).
PROB_DIGITS = 4
_WRITE_BYTES = 256 * 2**20  # decoded images waiting to be written, at most

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
    """One manifest row: every key of :data:`FIELDS`, ``None`` where not given."""
    return {**dict.fromkeys(FIELDS), "path": path, "status": status, "error": error, **fields}


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a ``manifest.jsonl`` (none if missing), skipping lines that are not a JSON
    object; status ``skipped`` (of earlier versions) is read as ``ok``."""
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as handle:
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
    """The latest row of each input path, in first-seen order, less the rows whose ``output`` a
    later row (another spelling of the same path) wrote again."""
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


def _lines(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """``rows`` as JSON lines, the keys of :data:`FIELDS` first."""
    ordered = (dict.fromkeys(FIELDS) | dict(row) for row in rows)
    return "".join(to_json(row, indent=None, ensure_ascii=False) + "\n" for row in ordered).encode()


class ManifestWriter:
    """Appends rows to ``manifest.jsonl`` in ``directory``, each call in one ``write``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / MANIFEST_JSONL

    def append(self, row: Mapping[str, Any]) -> None:
        self.append_many([row])

    def append_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append rows in one write (a ``CamtoolError`` if the manifest cannot be written)."""
        data = _lines(rows)
        if not data:
            return
        with writing(self.path), file_lock(self.directory / LOCK_NAME):
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # a line cut short by a kill stays on its own
                try:
                    written = os.write(fd, data)
                    while 0 < written < len(data):
                        written += os.write(fd, data[written:])
                    if written < len(data):
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                except BaseException:  # all or nothing
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)
                    raise
            finally:
                os.close(fd)


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
    """Compact ``manifest.jsonl`` to one row per input, write ``manifest.csv`` and call
    ``write_gallery(directory, rows)``, under the lock; return the rows or a ``CamtoolError``."""
    directory = Path(directory)
    jsonl = directory / MANIFEST_JSONL
    with writing(f"the manifest in {directory}"), file_lock(directory / LOCK_NAME):
        rows = list(latest_rows(jsonl).values())
        atomic_write_bytes(jsonl, _lines(rows))
        atomic_write_bytes(directory / MANIFEST_CSV, _csv(rows).encode("utf-8"))
        if write_gallery is not None:
            write_gallery(directory, rows)
    return rows


class MapWriter:
    """Writes maps in ``threads`` threads and hands back their rows in order, holding at most
    ``max_pending`` images submitted but not handed back."""

    def __init__(
        self, out_dir: Path, info: ModelInfo, options: CamOptions, threads: int, max_pending: int
    ) -> None:
        self.out_dir = out_dir
        self.info = info
        self.options = options
        self.max_pending = max_pending
        self.pending: deque[tuple[Future[dict[str, Any]], int]] = deque()
        self.pending_bytes = 0
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="camtool-write")

    def submit(
        self, item: InputItem, original: np.ndarray, batch: CAMBatch, row: int
    ) -> list[dict[str, Any]]:
        """Queue image ``row`` of ``batch``; return the rows of the writes finished meanwhile."""
        future = self.pool.submit(self.write_one, item, original, batch, row)
        self.pending.append((future, original.nbytes))
        self.pending_bytes += original.nbytes
        return self.collect(self.max_pending)

    def collect(self, limit: int) -> list[dict[str, Any]]:
        """The rows of finished writes, in order, waiting while over ``limit`` are pending."""
        rows = []
        while self.pending and (
            len(self.pending) > limit
            or self.pending_bytes > _WRITE_BYTES
            or self.pending[0][0].done()
        ):
            future, size = self.pending.popleft()
            self.pending_bytes -= size
            rows.append(future.result())
        return rows

    def stop(self, cancel: bool) -> list[dict[str, Any]]:
        """Finish (or, after an interrupt, cancel the unstarted) writes; return their rows."""
        if cancel:
            self.pending = deque((f, n) for f, n in self.pending if not f.cancel())
            self.pending_bytes = sum(n for _f, n in self.pending)
        rows = self.collect(0)
        self.pool.shutdown(wait=True)
        return rows

    def write_one(
        self, item: InputItem, original: np.ndarray, batch: CAMBatch, row: int
    ) -> dict[str, Any]:
        """Draw and write one image's maps; return its manifest row (never raises)."""
        image, base = Image.fromarray(original), self.out_dir / item.base
        names = self.info.class_names
        true_idx = true_class(item.path, names)
        try:
            maps = located_maps(image, batch, row, base, self.info, self.options, true_idx)
        except OSError as exc:
            return manifest_row(item.path, "error", f"cannot write outputs ({exc.strerror or exc})")
        except CamtoolError as exc:
            return manifest_row(item.path, "error", exc.message)
        except Exception as exc:  # one image's failure must not end the run
            reason = f"cannot draw maps ({type(exc).__name__}: {exc})"
            return manifest_row(item.path, "error", reason)
        probs = batch.probs[row]
        pred = int(probs.argmax())
        outputs = [Path(f).relative_to(self.out_dir).as_posix() for m in maps for f in m.files]
        return manifest_row(
            item.path,
            "ok",
            output=outputs[0],
            pred_idx=pred,
            pred_name=names[pred],
            prob=round(float(probs[pred]), PROB_DIGITS),
            class_idx=int(batch.class_idx[row, 0]),
            true_idx=true_idx,
            true_name=None if true_idx is None else names[true_idx],
            peak=maps[0].peak,
            box=maps[0].box,
            outputs=outputs,
        )
