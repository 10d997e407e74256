"""Progress on stderr, the same way for every command: a live bar on a terminal, plain lines in
logs, nothing with ``--quiet``.

On a terminal (stderr is a TTY) a command shows rich's live bars. Anywhere else (CI logs,
``nohup``, job arrays, ``2> log``) a live bar would print nothing until the end, so the command
prints plain lines instead, without ANSI codes, throttled: every ``every`` items, every
``fraction`` of the total, every ``seconds`` seconds, and once when a stage completes::

    camtool batch-cam: 200/1000 images (20%), 41.3 images/s, ETA 19s
    camtool download: 9.4/94.4 MB (10%), 3.1 MB/s, ETA 27s

stdout is never touched. ``camtool train`` prints its own lines (per epoch, and every
``training.log_every`` batches) with :func:`plain_line` and :func:`progress_mode`.
"""

from __future__ import annotations

import math
import sys
import time
from enum import Enum
from types import TracebackType
from typing import Any

__all__ = ["ProgressMode", "ProgressReporter", "plain_line", "progress_mode"]


class ProgressMode(str, Enum):
    """How a command shows progress."""

    live = "live"  #: rich's bars on a terminal
    lines = "lines"  #: plain, throttled lines (stderr is not a terminal)
    off = "off"  #: --quiet


def progress_mode(quiet: bool, stream: Any = None, *, json_out: bool = False) -> ProgressMode:
    """How to show progress.

    Args:
        quiet: ``--quiet``: ``off``.
        stream: where to look for a terminal (default: camtool's stderr console).
        json_out: ``--json``: no live bar on a terminal (``off`` there); lines in logs stay.

    Returns:
        ``off``, ``live`` (a terminal) or ``lines`` (anything else).
    """
    if quiet:
        return ProgressMode.off
    if stream is None:
        from camtool.cli._output import err

        terminal = err.is_terminal
    else:
        isatty = getattr(stream, "isatty", None)
        terminal = isatty is not None and bool(isatty())
    if terminal:
        return ProgressMode.off if json_out else ProgressMode.live
    return ProgressMode.lines


def plain_line(text: str) -> None:
    """Write one line to stderr as it is (no markup, no colour) and flush it at once."""
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _megabytes(count: float) -> str:
    return f"{count / 1e6:.1f}"


class ProgressReporter:
    """One command's progress through one or more stages, shown as :class:`ProgressMode` says.

    Use as a context manager; call :meth:`update` as work is done and :meth:`message` for lines
    that must show even through a live bar (per-file errors).

    Args:
        command: the command's name, the prefix of each line (``camtool <command>: ...``).
        quiet: print no progress (messages with ``always=True`` still show).
        unit: what is counted (``images``, ``batches``); ``bytes`` shows megabytes.
        every: a line each time this many more items are done.
        fraction: a line each time this fraction of the total more is done (e.g. 0.1).
        seconds: a line at least this often while work goes on.
        stream: where to decide terminal or not (default stderr; tests pass their own).
        json_out: ``--json`` was given (no live bar on a terminal; see :func:`progress_mode`).
    """

    def __init__(
        self,
        command: str,
        *,
        quiet: bool = False,
        unit: str = "images",
        every: int | None = None,
        fraction: float | None = None,
        seconds: float = 30.0,
        stream: Any = None,
        json_out: bool = False,
    ) -> None:
        self.command = command
        self.mode = progress_mode(quiet, stream, json_out=json_out)
        self.unit = unit
        self.every = every
        self.fraction = fraction
        self.seconds = seconds
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._stage: str | None = None
        self._started = time.monotonic()
        self._last_time = self._started
        self._last_mark: tuple[int, int] = (0, 0)
        self._finished: set[str] = set()

    def __enter__(self) -> ProgressReporter:
        if self.mode is ProgressMode.live:
            self._bar = _live_bar(self.unit)
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def update(self, done: int, total: int | None = None, stage: str | None = None) -> None:
        """``done`` of ``total`` items (``None`` if unknown) of ``stage`` are done."""
        key = stage or self.command
        if self.mode is ProgressMode.live and self._bar is not None:
            if key not in self._tasks:
                self._tasks[key] = self._bar.add_task(stage or self.command, total=total)
            self._bar.update(self._tasks[key], completed=done, total=total)
        elif self.mode is ProgressMode.lines and self._due(key, done, total):
            plain_line(self._line(stage, done, total))

    def message(self, text: str, *, always: bool = False) -> None:
        """Show ``text`` on its own line (through the live bar); with ``--quiet`` only if
        ``always``."""
        if self.mode is ProgressMode.off and not always:
            return
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            plain_line(text)

    def _due(self, key: str, done: int, total: int | None) -> bool:
        """Whether a line is due now (and, if so, remember that it was printed)."""
        if key != self._stage:
            self._stage, self._started = key, time.monotonic()
            self._last_time, self._last_mark = self._started, (0, 0)
        now = time.monotonic()
        finished = total is not None and done >= total
        if finished and key in self._finished:
            return False
        every = done // self.every if self.every else 0
        share = 0
        if self.fraction and total:
            share = math.floor(done / total / self.fraction + 1e-9)
        mark = (every, share)
        due = (
            finished
            or any(new > old for new, old in zip(mark, self._last_mark, strict=True))
            or now - self._last_time >= self.seconds
        )
        if due:
            self._last_time, self._last_mark = now, mark
            if finished:
                self._finished.add(key)
        return due

    def _line(self, stage: str | None, done: int, total: int | None) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = done / elapsed
        megabytes = self.unit == "bytes"
        show = _megabytes if megabytes else str
        unit = "MB" if megabytes else self.unit
        head = f"camtool {self.command}: " + (f"{stage} " if stage else "")
        if total:
            text = f"{head}{show(done)}/{show(total)} {unit} ({done / total:.0%})"
        else:
            text = f"{head}{show(done)} {unit}"
        text += f", {show(rate) if megabytes else f'{rate:.1f}'} {unit}/s"
        if total and 0 < done < total and rate > 0:
            text += f", ETA {_duration((total - done) / rate)}"
        return text


def _live_bar(unit: str) -> Any:
    """A transient rich progress display on stderr for ``unit`` (bytes get sizes and speeds)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from camtool.cli._output import err

    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    if unit == "bytes":
        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns += [MofNCompleteColumn()]
    return Progress(*columns, TimeRemainingColumn(), console=err, transient=True)
