"""Atomic, durable file writes, full-disk errors and stale temporary files, for every command.

A reader never sees half a file, a failed write leaves the previous version intact, and once the
writer returns the new file survives a crash. A full disk is an :class:`OSError` naming the
target, also when ``torch.save`` reports it as a ``RuntimeError``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
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
    "unique_name",
    "writing",
]

SCRATCH_PREFIX = ".camtool-"  # of camtool's scratch folders
STALE_AFTER_S = 3600.0  # a temporary untouched this long belongs to a dead writer

_TEMP = re.compile(r"^\..+\.(?:\d+-[0-9a-f]{8}|[a-z0-9_]{8})\.tmp(?:\.[^.]+)?$")
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once, at import (single-threaded): mkstemp's 0600 becomes what open() gives
_LOW_SPACE = 16 * 2**20  # below this many free bytes a failed write means a full disk
_WRITE_FAILURES = ("inline_container", "file write failed", "No space left")


def _write_error(target: Path, exc: RuntimeError) -> OSError | None:
    """The OSError behind a ``torch.save`` RuntimeError about a failed write, if any."""
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
    """Yield a hidden temporary path beside ``target`` (same suffix); on success it replaces
    ``target`` atomically and durably; on any error it is removed.

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
    """Delete :func:`atomic_path` temporaries and ``SCRATCH_PREFIX*`` folders in ``folder``
    untouched for :data:`STALE_AFTER_S` (killed writers left them; age, not a pid, decides).

    Returns:
        The paths removed.
    """
    removed: list[Path] = []
    now = time.time()
    for parent, dirs, files in os.walk(folder):
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
        if not recursive:
            break
    return removed


@contextlib.contextmanager
def writing(what: object) -> Iterator[None]:
    """Turn an :class:`OSError` inside the block into a one-line ``CamtoolError``:
    ``cannot write WHAT: REASON``."""
    try:
        yield
    except OSError as exc:
        raise CamtoolError(f"cannot write {what}: {exc.strerror or exc}") from None


def unique_name(name: str, taken: Callable[[str], bool], *, start: int = 2) -> str:
    """``name``, else the first of ``name-START``, ``name-START+1`` ... that is not ``taken``."""
    chosen, n = name, start
    while taken(chosen):
        chosen = f"{name}-{n}"
        n += 1
    return chosen


def refuse_to_replace(
    paths: Iterable[Path], *, overwrite: bool, hint: str = "", marker: str | None = None
) -> None:
    """Refuse (one line) to replace files camtool did not write, unless ``overwrite``.

    Args:
        paths: the files about to be written.
        overwrite: the user passed ``--overwrite``.
        hint: appended to the message (e.g. ``", or choose ..."``).
        marker: a file name showing camtool wrote its folder (files there are replaced).

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
