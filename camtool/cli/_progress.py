"""Progress on stderr: rich's live bars on a terminal (none with ``--quiet`` or ``--json``),
elsewhere (CI logs, ``2> log``) plain throttled lines (none with ``--quiet``)::

    camtool batch-cam: 200/1000 images (20%), 41.3 images/s, ETA 19s
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any

from camtool.cli._output import err

if TYPE_CHECKING:
    from camtool.training.types import BatchProgress, EpochMetrics, TrainPlan

__all__ = ["LINE_EVERY", "ProgressReporter", "TrainProgress"]

#: Without a terminal, a progress line every this many items and at least every this many seconds.
LINE_EVERY = 100
LINE_SECONDS = 30.0


def _stderr_is_terminal() -> bool:
    return bool(err.is_terminal)


def _plain_line(text: str) -> None:
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


class ProgressReporter:
    """One command's progress through one or more stages; a context manager.

    Call :meth:`update` as work is done, :meth:`message` for lines that must show even through a
    live bar. ``command`` prefixes each line (``camtool <command>: ...``); ``unit`` is what is
    counted (``bytes`` shows megabytes); lines are printed every ``every`` items, every
    ``fraction`` of the total, every :data:`LINE_SECONDS` seconds and when a stage completes.
    ``stream`` is where to look for a terminal (default: camtool's stderr console).
    """

    def __init__(
        self,
        command: str,
        *,
        quiet: bool = False,
        unit: str = "images",
        every: int | None = None,
        fraction: float | None = None,
        stream: Any = None,
        json_out: bool = False,
    ) -> None:
        self.command = command
        isatty = getattr(stream, "isatty", None) if stream is not None else _stderr_is_terminal
        terminal = isatty is not None and bool(isatty())
        #: ``live`` (bars), ``lines`` (plain lines) or ``off`` (``--quiet``; ``--json`` on a tty)
        self.mode = "off" if quiet or (terminal and json_out) else "live" if terminal else "lines"
        self.unit = unit
        self.every = every
        self.fraction = fraction
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._stage: str | None = None
        self._started = time.monotonic()
        self._last_time = self._started
        self._last_mark = 0
        self._finished: set[str] = set()

    def __enter__(self) -> ProgressReporter:
        if self.mode == "live":
            from rich import progress as rp

            columns: list[Any] = [rp.TextColumn("{task.description}"), rp.BarColumn()]
            if self.unit == "bytes":
                columns += [rp.DownloadColumn(), rp.TransferSpeedColumn()]
            else:
                columns += [rp.MofNCompleteColumn(), rp.TextColumn("{task.fields[stats]}")]
            self._bar = rp.Progress(*columns, rp.TimeRemainingColumn(), console=err, transient=True)
            self._bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    @property
    def live(self) -> bool:
        """Whether a live bar is showing (a terminal, neither ``--quiet`` nor ``--json``)."""
        return self._bar is not None

    def update(
        self, done: int, total: int | None = None, stage: str | None = None, *, stats: str = ""
    ) -> None:
        """``done`` of ``total`` items (``None`` if unknown) of ``stage`` are done; on a terminal
        each stage has its bar (``stats`` beside it), which replaces the finished ones."""
        key = stage or self.command
        if self._bar is not None:
            if key not in self._tasks:
                for task in self._bar.tasks:
                    if task.finished:
                        task.visible = False
                self._tasks[key] = self._bar.add_task(key, total=total, stats=stats)
            self._bar.update(self._tasks[key], completed=done, total=total, stats=stats)
        elif self.mode == "lines" and self._due(key, done, total):
            _plain_line(self._line(stage, done, total))

    def message(self, text: str, *, always: bool = False) -> None:
        """Show ``text`` on its own line; with ``--quiet`` only if ``always``."""
        if self.mode == "off" and not always:
            return
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            _plain_line(text)

    def _due(self, key: str, done: int, total: int | None) -> bool:
        """Whether a line is due now (remembered if so)."""
        if key != self._stage:
            self._stage, self._started = key, time.monotonic()
            self._last_time, self._last_mark = self._started, 0
        now = time.monotonic()
        finished = total is not None and done >= total
        if finished and key in self._finished:
            return False
        step = self.every or (self.fraction or 0) * (total or 0)  # items between lines
        mark = math.floor(done / step + 1e-9) if step else 0
        due = finished or mark > self._last_mark or now - self._last_time >= LINE_SECONDS
        if due:
            self._last_time, self._last_mark = now, mark
            if finished:
                self._finished.add(key)
        return due

    def _line(self, stage: str | None, done: int, total: int | None) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = done / elapsed
        megabytes = self.unit == "bytes"
        show = (lambda count: f"{count / 1e6:.1f}") if megabytes else str
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


class TrainProgress:
    """Training progress (a :class:`~camtool.training.types.TrainObserver`) through an entered
    reporter: bars for epochs and batches (loss, accuracy, images/s) on a terminal, a line every
    ``training.log_every`` batches elsewhere, and one line per epoch in both."""

    def __init__(self, reporter: ProgressReporter) -> None:
        self.reporter = reporter
        self.num_epochs = 0
        self.num_batches = 0

    def on_start(self, plan: TrainPlan) -> None:
        parts = [
            f"training {plan.arch} on {plan.train_images} images of {len(plan.class_names)} "
            f"classes ({plan.val_images} held out), {plan.device} {plan.precision}"
        ]
        if plan.world_size > 1:
            parts.append(f"{plan.world_size} processes")
        if plan.resumed_from is not None:
            parts.append(f"resuming {plan.resumed_from} at epoch {plan.start_epoch}")
        if plan.optimizer_restarted:
            parts.append("with fresh optimizer moments (the checkpoint keeps none)")
        self.reporter.message(", ".join(parts))
        self.num_epochs = plan.num_epochs
        if self.reporter.live:
            self.reporter.update(plan.start_epoch - 1, plan.num_epochs, "epochs")

    def on_epoch_start(self, epoch: int, num_batches: int, done_batches: int) -> None:
        self.num_batches = num_batches
        if self.reporter.live:
            self.reporter.update(done_batches, num_batches, f"epoch {epoch}")

    def on_batch(self, progress: BatchProgress) -> None:
        stats = (
            f"loss {progress.loss:.3f}  acc {progress.acc:6.1%}  {progress.images_per_s:6.0f} img/s"
        )
        batch = f"batch {progress.batch}/{progress.num_batches}  {' '.join(stats.split())}"
        self._in_epoch(progress.epoch, progress.batch, progress.num_batches, stats, batch)

    def on_validate(self, epoch: int) -> None:
        self._in_epoch(epoch, self.num_batches, self.num_batches, "validating", "validating")

    def _in_epoch(self, epoch: int, done: int, total: int, stats: str, line: str) -> None:
        """The bar at ``done`` of ``total`` batches, else ``camtool train: epoch E/N LINE``."""
        if self.reporter.live:
            self.reporter.update(done, total, f"epoch {epoch}", stats=stats)
        else:
            self.reporter.message(f"camtool train: epoch {epoch}/{self.num_epochs} {line}")

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        if self.reporter.live:
            self.reporter.update(metrics.epoch, self.num_epochs, "epochs")
        self.reporter.message(
            f"epoch {metrics.epoch:3d}  train loss {metrics.train_loss:.4f} "
            f"acc {metrics.train_acc:6.1%}  val loss {metrics.val_loss:.4f} "
            f"acc {metrics.val_acc:6.1%}  lr {metrics.lr:.2e}  {metrics.seconds:.1f}s  "
            f"{metrics.images_per_s:.0f} img/s"
            + (f"  {metrics.skipped} unreadable" if metrics.skipped else "")
        )
