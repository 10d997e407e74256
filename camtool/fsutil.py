"""File output every command shares: atomic, durable writes, full disks, stale temporary files.

* :func:`atomic_path` writes beside the target under a hidden temporary name from
  :func:`tempfile.mkstemp` (``.last.pt.k3j9x_2a.tmp.pt``), then flushes it to disk, renames it
  over the target (:func:`os.replace`) and syncs the folder. The guarantee, the same for every
  file camtool writes (checkpoints, maps, arrays, JSON, settings, exports): a reader never sees
  half a file, a failed write leaves the previous version intact, and once the writer returns
  the new file survives a crash or power loss.
* A full disk is reported as an :class:`OSError` naming the target, also when the writer is
  ``torch.save``, which raises ``RuntimeError("[enforce fail at inline_container.cc ...] file
  write failed")`` instead.
* :func:`remove_stale_temps` deletes the temporary files and scratch folders that killed writers
  (``kill -9``, power loss) left: only names of those patterns, only once untouched for an hour.
  Age, not a pid, decides, because a pid means nothing in a folder that several containers share.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from camtool.errors import CamtoolError

__all__ = [
    "SCRATCH_PREFIX",
    "STALE_AFTER_S",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "refuse_to_replace",
    "remove_stale_temps",
]

#: Prefix of camtool's scratch folders (``tempfile.mkdtemp(prefix=SCRATCH_PREFIX + "shapes-")``).
SCRATCH_PREFIX = ".camtool-"
#: A temporary file or scratch folder untouched this long (seconds) belongs to a dead writer.
STALE_AFTER_S = 3600.0

_TEMP = re.compile(r"^\..+\.(?:\d+-[0-9a-f]{8}|[a-z0-9_]{8})\.tmp(?:\.[^.]+)?$")
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once, at import (single-threaded): mkstemp's 0600 becomes what open() gives
_LOW_SPACE = 16 * 2**20
"""Below this many free bytes a failed write is put down to a full disk."""
_WRITE_FAILURES = ("inline_container", "file write failed", "No space left")


def _write_error(target: Path, exc: RuntimeError) -> OSError | None:
    """The OSError behind a ``torch.save`` RuntimeError about a failed write, if it is one."""
    text = str(exc)
    if not any(marker in text for marker in _WRITE_FAILURES):
        return None
    try:
        free = shutil.disk_usage(target.parent).free
    except OSError:
        free = 0
    if "No space left" in text or free < _LOW_SPACE:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
    return OSError(errno.EIO, f"write failed ({text.splitlines()[0][:120]})", str(target))


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target`` atomically
    and durably (see the module's guarantee).

    The temporary name is hidden and keeps the target's suffix (so writers that look at the
    extension, like ``numpy.savez``, behave). On any error (or Ctrl-C) the temporary file is
    removed and ``target`` is left as it was.

    Raises:
        OSError: the write failed (``errno.ENOSPC`` for a full disk; ``filename`` is
            ``target``), also when the writer reported it as a ``RuntimeError``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(handle)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield tmp
        _sync(tmp)
        os.replace(tmp, target)
        _sync(target.parent)
    except RuntimeError as exc:
        error = _write_error(target, exc)
        if error is None:
            raise
        raise error from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) and exc.filename != str(target):
            raise OSError(exc.errno, os.strerror(exc.errno), str(target)) from None
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _sync(path: Path) -> None:
    """Flush ``path`` (a file, or a folder's entries on POSIX) to the disk."""
    if path.is_dir() and os.name == "nt":  # pragma: no cover - Windows syncs no folders
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot sync a folder
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (see :func:`atomic_path` for the errors)."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


def _is_stale(path: Path, now: float) -> bool:
    try:
        return now - path.lstat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


def remove_stale_temps(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Delete temporary files and scratch folders that killed writers left in ``folder``.

    Only hidden names of :func:`atomic_path`'s pattern and folders named
    ``SCRATCH_PREFIX*``, and only those untouched for :data:`STALE_AFTER_S`, are removed;
    nothing else is touched. A missing or unreadable folder is left alone.

    Returns:
        The paths removed.
    """
    removed: list[Path] = []
    now = time.time()
    walker: Iterable[tuple[str, list[str], list[str]]]
    walker = os.walk(folder) if recursive else [(str(folder), *_entries(Path(folder)))]
    for parent, dirs, files in walker:
        for name in list(dirs):
            path = Path(parent) / name
            if name.startswith(SCRATCH_PREFIX) and _is_stale(path, now):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
                dirs.remove(name)
        for name in files:
            path = Path(parent) / name
            if _TEMP.match(name) and _is_stale(path, now):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed


def _entries(folder: Path) -> tuple[list[str], list[str]]:
    """The folder and file names directly in ``folder`` (none if it cannot be read)."""
    dirs: list[str] = []
    files: list[str] = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            (dirs if entry.is_dir(follow_symlinks=False) else files).append(entry.name)
    return dirs, files


def refuse_to_replace(
    paths: Iterable[Path], *, overwrite: bool, hint: str = "", marker: str | None = None
) -> None:
    """Refuse (one line) to replace files camtool did not write, unless the user asked to.

    Args:
        paths: the files about to be written.
        overwrite: the user passed ``--overwrite``: replace anything.
        hint: what else the user can do (appended to the message, e.g. ``", or choose ..."``).
        marker: a file name (``camtool-settings.toml``) whose presence in a folder shows camtool
            wrote that folder's outputs: files there are replaced. ``None``: every existing
            file is refused.

    Raises:
        CamtoolError: one of ``paths`` exists (the first is named).
    """
    if overwrite:
        return
    for path in map(Path, paths):
        if not path.exists() or (marker is not None and (path.parent / marker).is_file()):
            continue
        why = "" if marker is None else " and camtool did not write it"
        raise CamtoolError(f"{path} exists{why}; pass --overwrite to replace it{hint}")
