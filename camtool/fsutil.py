"""File output every command shares: atomic writes, full disks, stale temporary files.

* :func:`atomic_path` writes beside the target under a hidden temporary name that carries the
  writer's pid (``.last.pt.<pid>-<hex>.tmp.pt``), then renames it over the target, so a reader
  never sees half a file and the previous version stays intact when the write fails.
* A full disk is reported as an :class:`OSError` naming the target, also when the writer is
  ``torch.save``, which raises ``RuntimeError("[enforce fail at inline_container.cc ...] file
  write failed")`` instead.
* :func:`remove_stale_temps` deletes the temporary files of writers that were killed (``kill
  -9``, power loss): only names of that pattern, only of processes no longer alive.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from camtool.errors import CamtoolError

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "refuse_to_replace",
    "remove_stale_temps",
    "scratch_prefix",
    "temp_name",
]

_TEMP = re.compile(r"^\..+\.(?:(?P<pid>\d+)-)?[0-9a-f]{8}\.tmp(?:\.[^.]+)?$")
_SCRATCH = re.compile(r"^\.camtool-[a-z]+-(?P<pid>\d+)-")
_LEGACY_AGE_S = 3600.0
"""Temporary names without a pid (older camtool) are stale once this old (seconds)."""
_LOW_SPACE = 16 * 2**20
"""Below this many free bytes a failed write is put down to a full disk."""
_WRITE_FAILURES = ("inline_container", "file write failed", "No space left")


def temp_name(target: Path) -> Path:
    """The hidden temporary path :func:`atomic_path` writes ``target`` through."""
    target = Path(target)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return target.with_name(f".{target.name}.{tag}.tmp{target.suffix}")


def scratch_prefix(purpose: str) -> str:
    """A hidden prefix for a temporary folder (``tempfile.mkdtemp(prefix=...)``) of this process.

    ``.camtool-<purpose>-<pid>-``: :func:`remove_stale_temps` deletes such folders once their
    process is gone.
    """
    return f".camtool-{purpose}-{os.getpid()}-"


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
    """Yield a temporary path next to ``target``; on success it replaces ``target`` atomically.

    The temporary name is hidden and keeps the target's suffix (so writers that look at the
    extension, like ``numpy.savez``, behave). On any error (or Ctrl-C) the temporary file is
    removed and ``target`` is left as it was.

    Raises:
        OSError: the write failed (``errno.ENOSPC`` for a full disk; ``filename`` is
            ``target``), also when the writer reported it as a ``RuntimeError``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(target)
    try:
        yield tmp
        os.replace(tmp, target)
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


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (see :func:`atomic_path` for the errors)."""
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_text(target: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def _is_stale(path: Path) -> bool:
    match = _TEMP.match(path.name)
    if match is None:
        return False
    pid = match.group("pid")
    if pid is not None:
        return not _alive(int(pid))
    try:
        return time.time() - path.lstat().st_mtime > _LEGACY_AGE_S
    except OSError:
        return False


def remove_stale_temps(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Delete temporary files that killed writers of :func:`atomic_path` left in ``folder``.

    Only hidden names of :func:`temp_name`'s pattern whose pid is not a live process (or, for
    names without a pid, older than an hour), and folders of :func:`scratch_prefix` of dead
    processes, are removed; nothing else is touched. A missing or
    unreadable folder is left alone.

    Returns:
        The files removed.
    """
    removed: list[Path] = []
    folder = Path(folder)
    walker: Iterable[tuple[str, list[str], list[str]]]
    walker = os.walk(folder) if recursive else [(str(folder), [], _names(folder))]
    for parent, dirs, files in walker:
        for name in list(dirs) if recursive else _dir_names(folder):
            match = _SCRATCH.match(name)
            if match and not _alive(int(match.group("pid"))):
                shutil.rmtree(Path(parent) / name, ignore_errors=True)
                removed.append(Path(parent) / name)
                if name in dirs:
                    dirs.remove(name)
        for name in files:
            path = Path(parent) / name
            if name.startswith(".") and _is_stale(path):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed


def _dir_names(folder: Path) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _names(folder: Path) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False)]
    except OSError:
        return []


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
