"""What every long-running command shares about processes: signals, folder locks, workers.

* :func:`sigterm_as_interrupt`: while a command runs, SIGTERM (what ``kill``, Slurm, Kubernetes
  and systemd send) raises :class:`~camtool.errors.Interrupted` in the main thread, a
  :class:`KeyboardInterrupt`, so it stops the run exactly as Ctrl-C does: the same cleanup, the
  same saved state, one line, exit code 143 (Ctrl-C: 130).
* :func:`folder_lock`: an exclusive lock (:mod:`filelock`) on ``<folder>/.camtool.lock`` so that
  two runs of ``train`` (or ``demo``) never write into one folder. The kernel drops the lock when
  its process dies, however it dies, so a lock left by a killed run is never in the way.
  :func:`file_lock` is the same lock on any file (batch-cam's manifest).
* :func:`worker_init`: the ``worker_init_fn`` of every data loader, made in the parent (which
  records its own pid): on Linux the worker is killed when its parent dies
  (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), even by ``kill -9``, and it ignores SIGINT/SIGTERM
  while the parent runs (the parent stops it cleanly). A parent that is pid 1 (a container's
  main process) is no exception.

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
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`~camtool.errors.Interrupted` (a KeyboardInterrupt).

    Only in the main thread (Python delivers signals there); elsewhere this does nothing. The
    previous handler is put back on the way out.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopRequest:
    """Set by :func:`deferred_stop` when a stop signal arrives; the run stops at a safe point.

    Attributes:
        signum: the signal received first (``None`` while none came).
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def deferred_stop(request: StopRequest, *, enabled: bool = True) -> Iterator[StopRequest]:
    """First Ctrl-C or SIGTERM: only record it in ``request``. A second: raise at once.

    For loops that can stop cleanly between two steps (``train`` finishes its batch and saves).
    Only in the main thread and when ``enabled``; the previous handlers are put back on exit.

    Raises:
        Interrupted: on the second signal.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: Any) -> None:
        if request.signum is not None:
            raise Interrupted(signum)
        request.signum = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def die_with_parent(creator: int, *, via_server: bool = False) -> None:
    """Have the kernel kill this process (SIGKILL) when its parent dies; Linux only.

    If the parent is already gone (it died before the kernel was asked), exit at once. "Gone" is
    judged against the pid of the process that made this one, recorded there before this
    process started: in a container the main process is pid 1, so a parent pid of 1 alone says
    nothing; a worker whose parent died is re-parented (to pid 1 or a subreaper), so its parent
    pid no longer matches the recorded one.

    Args:
        creator: the pid of the process that started this one (``os.getpid()`` there).
        via_server: this process was forked by multiprocessing's fork server (start method
            ``"forkserver"``), itself a child of ``creator``; the fork server exits when
            ``creator`` does, so the check is that the parent's parent is ``creator``.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    parent = os.getppid()
    if (_parent_of(parent) if via_server else parent) != creator:
        os._exit(1)


def _parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from ``/proc/<pid>/stat`` (field 4); ``None`` if unreadable."""
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
    die_with_parent(creator, via_server=via_server)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, functools.partial(_on_sigterm, exiting))
    if then is not None:
        then(worker_id)


def _on_sigterm(exiting: Any, signum: int, frame: object) -> None:
    """A worker's SIGTERM: ignored while its parent runs (the parent stops the workers itself),
    obeyed once the parent is exiting (its interpreter terminates the workers still alive)."""
    if exiting.is_set():
        os._exit(0)


_EXITING: dict[str, Any] = {}


def _parent_exiting(method: str) -> Any:
    """This process's "exiting" event for workers of start method ``method``: set at exit,
    before :mod:`multiprocessing` terminates the (daemonic) workers still alive."""
    if method not in _EXITING:
        event = multiprocessing.get_context(method).Event()  # imports multiprocessing.util,
        atexit.register(event.set)  # whose exit hook runs after this one (atexit is LIFO)
        _EXITING[method] = event
    return _EXITING[method]


def worker_init(then: Callable[[int], None] | None = None) -> Callable[[int], None]:
    """The ``worker_init_fn`` for a data loader made in this process (call it here, not there).

    The returned callable, run first in each worker, makes the worker safe: it dies with its
    parent and leaves signals to it. Ctrl-C in a terminal (or SIGTERM from Slurm or systemd)
    signals the whole process group; the worker ignores it, and the parent, which handles it,
    shuts the workers down. If the parent is killed outright, the kernel kills the worker too;
    once the parent's interpreter exits, SIGTERM ends the worker (so that a loader left open
    with persistent workers does not hang the exit). This process's pid is recorded now, so the
    worker checks its real parent (see :func:`die_with_parent`), also when this process is
    pid 1 (a container's main process). The loader must use the default multiprocessing start
    method (whose name is also recorded now).

    Args:
        then: run next in the worker with the worker's id (e.g. to seed its generators); a
            module-level function, so that the callable pickles for the spawn start methods.

    Returns:
        A picklable ``worker_init_fn(worker_id: int) -> None``.
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
def file_lock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on the file ``path`` (:mod:`filelock`: ``flock`` on POSIX,
    ``LockFileEx`` on Windows) while inside. The kernel drops it when the process dies.

    Yields:
        ``True`` once locked; ``False`` if the file system cannot lock (some network file
        systems), in which case the block runs unlocked.

    Raises:
        filelock.Timeout: ``wait`` is false and another process holds the lock.
        OSError: the lock file cannot be created.
    """
    lock = filelock.FileLock(str(path), timeout=-1 if wait else 0)
    try:
        lock.acquire()
    except NotImplementedError:  # no flock here: run unlocked, as before locking existed
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


@contextlib.contextmanager
def folder_lock(folder: Path, command: str) -> Iterator[None]:
    """Hold ``folder``'s lock (``<folder>/.camtool.lock``) while inside; refuse if another live
    process holds it. The holder's pid is kept beside it (``.camtool.pid``), for the message.

    Args:
        folder: the folder to lock (created if missing, and removed again if it is still empty
            on the way out).
        command: the command's name, for the message (``"train"``).

    Raises:
        CamtoolError: another process holds the lock (exit code 1), naming the folder; or the
            folder cannot be created.
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
    """After a folder lock: a folder the run created and left empty is removed."""
    with contextlib.suppress(OSError):
        if created and [entry.name for entry in folder.iterdir()] == [LOCK_NAME]:
            (folder / LOCK_NAME).unlink()
            folder.rmdir()
