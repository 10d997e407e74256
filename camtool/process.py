"""Signals, folder locks and data-loader workers, shared by every long-running command.

No torch here: the CLI imports this module before any command runs.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from camtool.errors import CamtoolError, Interrupted

__all__ = [
    "LOCK_NAME",
    "StopRequest",
    "deferred_stop",
    "file_lock",
    "folder_lock",
    "sigterm_as_interrupt",
    "worker_init",
]

LOCK_NAME = ".camtool.lock"
_PID_NAME = ".camtool.pid"
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@contextlib.contextmanager
def _handling(handler: Callable[[int, Any], None], *signums: int) -> Iterator[None]:
    """``handler`` for ``signums`` while inside; none outside the main thread (Python's rule)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def sigterm_as_interrupt() -> contextlib.AbstractContextManager[None]:
    """While inside, SIGTERM raises :class:`~camtool.errors.Interrupted` (a KeyboardInterrupt),
    so it stops a run as Ctrl-C does. Main thread only; elsewhere this does nothing."""

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    return _handling(handler, signal.SIGTERM)


@dataclass
class StopRequest:
    """Set by :func:`deferred_stop`: ``signum`` is the first stop signal (``None``: none yet)."""

    signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def deferred_stop(request: StopRequest, *, enabled: bool = True) -> Iterator[StopRequest]:
    """First Ctrl-C or SIGTERM: only record it in ``request``. A second: raise at once.

    Only in the main thread and when ``enabled``.

    Raises:
        Interrupted: on the second signal.
    """

    def handler(signum: int, frame: Any) -> None:
        if request.signum is not None:
            raise Interrupted(signum)
        request.signum = signum

    signums = (signal.SIGINT, signal.SIGTERM) if enabled else ()
    with _handling(handler, *signums):
        yield request


def _parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` (``/proc/<pid>/stat`` field 4); ``None`` if unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _init_worker(
    creator: int,
    via_server: bool,
    exiting: Any,
    then: Callable[[int], None] | None,
    worker_id: int,
) -> None:
    """On Linux, have the kernel SIGKILL this worker when its parent dies, and exit at once if
    the parent (the fork server's parent with ``via_server``) is no longer ``creator``'s pid."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        parent = os.getppid()
        if (_parent_of(parent) if via_server else parent) != creator:
            os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, functools.partial(_on_sigterm, exiting))
    if then is not None:
        then(worker_id)


def _on_sigterm(exiting: Any, signum: int, frame: object) -> None:
    """A worker's SIGTERM: ignored while its parent runs, obeyed once the parent is exiting."""
    if exiting.is_set():
        os._exit(0)


@functools.cache
def _parent_exiting(method: str) -> Any:
    """An event set at exit, before :mod:`multiprocessing` terminates the workers still alive."""
    event = multiprocessing.get_context(method).Event()  # imports multiprocessing.util,
    atexit.register(event.set)  # whose exit hook runs after this one (atexit is LIFO)
    return event


def worker_init(then: Callable[[int], None] | None = None) -> Callable[[int], None]:
    """The ``worker_init_fn`` for a data loader made in this process (call it here, not there).

    Each worker dies with its parent, ignores SIGINT, and SIGTERM until the parent exits,
    then runs ``then(worker_id)`` (module-level, to pickle). Default start method only.
    """
    method = multiprocessing.get_start_method(allow_none=True)
    if method is None:  # not fixed yet: the default, listed first (without fixing it here)
        method = multiprocessing.get_all_start_methods()[0]
    exiting = _parent_exiting(method)
    return functools.partial(_init_worker, os.getpid(), method == "forkserver", exiting, then)


def _holder(folder: Path) -> str:
    try:
        pid = (folder / _PID_NAME).read_text().split()[0]
    except (OSError, IndexError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


@contextlib.contextmanager
def file_lock(path: Path, *, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive :mod:`filelock` lock on ``path`` while inside (unlocked where the file
    system cannot lock).

    Raises:
        filelock.Timeout: ``wait`` is false and another process holds the lock.
        OSError: the lock file cannot be created.
    """
    lock = filelock.FileLock(str(path), timeout=-1 if wait else 0)
    try:
        lock.acquire()
    except NotImplementedError:  # no flock here: run unlocked, as before locking existed
        yield
        return
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def folder_lock(folder: Path, command: str) -> Iterator[None]:
    """Hold ``<folder>/.camtool.lock`` while inside (the folder is created, and removed again if
    left empty); ``command`` (``"train"``) is named in the message.

    Raises:
        CamtoolError: another process holds the lock, or the folder cannot be created.
    """
    folder = Path(folder)
    created = not folder.exists()
    with contextlib.ExitStack() as stack:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            stack.callback(_tidy, folder, created)
            stack.enter_context(file_lock(folder / LOCK_NAME, wait=False))
            (folder / _PID_NAME).write_text(f"{os.getpid()}\n")
        except filelock.Timeout:
            raise CamtoolError(
                f"{folder} is in use by another camtool {command} run{_holder(folder)}; wait "
                "for it to finish, or choose another folder"
            ) from None
        except OSError as exc:
            raise CamtoolError(f"cannot lock {folder}: {exc.strerror or exc}") from None
        stack.callback(lambda: (folder / _PID_NAME).unlink(missing_ok=True))
        yield


def _tidy(folder: Path, created: bool) -> None:
    with contextlib.suppress(OSError):
        if created and [entry.name for entry in folder.iterdir()] == [LOCK_NAME]:
            (folder / LOCK_NAME).unlink()
            folder.rmdir()
