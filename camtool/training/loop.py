"""``camtool train``'s loop: fine-tune a CAM network on an image folder, resumably.

An epoch's batches depend only on the seed and the epoch (:mod:`camtool.training.reproducibility`),
so a run resumed from ``last.pt``, even mid-epoch, ends with the same weights (bit for bit on the
CPU). The first Ctrl-C or SIGTERM finishes the batch, saves ``last.pt`` and exits 130 (SIGTERM:
143); a second one stops at once. Under ``torchrun`` only rank 0 reports, writes and holds the
folder lock.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor

from camtool.core.checkpoint import LoadedModel
from camtool.core.device import precision_name, resolve_device
from camtool.data.datasets import DEFAULT_CROP_SCALE
from camtool.errors import CamtoolError, Interrupted, interrupt_exit_code, interrupt_word
from camtool.evaluation.data import unique_skipped
from camtool.explain.files import refuse_out_of_gpu_memory
from camtool.fsutil import remove_stale_temps
from camtool.process import StopRequest, deferred_stop, folder_lock
from camtool.settings import SETTINGS_FILE, Settings, write_settings
from camtool.training.build import build_data, build_parts
from camtool.training.checkpoints import (
    BEST_FILE,
    CURVES_FILE,
    EPOCH_GLOB,
    LAST_FILE,
    METRICS_FILE,
    LoopState,
    RunFolder,
    dir_flag,
    prepare_fresh_dir,
    prepare_resume,
    restore_training,
)
from camtool.training.distributed import (
    DistContext,
    all_reduce,
    barrier,
    dist_from_env,
    local_device,
    process_group,
)
from camtool.training.evaluate import eval_sums
from camtool.training.optim import step_scheduler
from camtool.training.types import (
    BatchProgress,
    EpochMetrics,
    SilentObserver,
    TrainObserver,
    TrainPlan,
    TrainResult,
)

__all__ = ["train"]


class _Trainer:
    """One training job; :func:`train` builds it and calls :meth:`run`."""

    def __init__(
        self,
        settings: Settings,
        ctx: DistContext,
        device: torch.device,
        observer: TrainObserver,  # rank 0's; the others' is silent
        loaded: LoadedModel | None,  # the checkpoint to resume, if any
        crop_scale: tuple[float, float],
    ) -> None:
        self.settings, self.cfg = settings, settings.training
        self.ctx, self.device, self.observer = ctx, device, observer
        self.resumed_from = None if loaded is None else Path(loaded.source)
        self.directory = Path(self.cfg.checkpoint_dir)
        self.stop = StopRequest()  #: a signal asked to stop after the batch
        self.clean = True  #: the state is between two batches (fit to save)
        self._live_sums: Tensor | None = None
        self._epoch_t0: float | None = None
        self.skipped: dict[str, dict[str, str]] = {}  #: unreadable images met: {"path", "error"}
        self.data = build_data(settings, ctx, device, crop_scale)
        names = self.data.class_names
        self.parts = build_parts(settings, ctx, device, names, loaded)
        self.files = RunFolder(self.directory, settings, self.parts, names, ctx.world_size)
        self.state, self.optimizer_restarted = LoopState(), False
        if loaded is not None:
            self.state = restore_training(loaded, self.parts)
            self.optimizer_restarted = not bool((loaded.training or {}).get("complete", True))
            self.state.stopped_early = self._early_stop_due()

    def run(self) -> None:
        """Train until the epoch budget is spent or early stopping fires."""
        barrier(self.ctx)  # every process has checked the folder before rank 0 writes to it
        if self.ctx.main:
            write_settings(self.directory, self.settings)  # and makes the folder
            if self.resumed_from is not None:
                self.files.save_epoch(self.state, resumed=True)
        if self._finished():
            return
        with deferred_stop(self.stop, enabled=not self.ctx.enabled):
            try:
                plan = TrainPlan(
                    num_epochs=self.cfg.num_epochs,
                    start_epoch=self.state.epoch + 1,
                    batches_per_epoch=self.data.sampler.num_batches(),
                    train_images=self.data.train_images,
                    val_images=self.data.val_images,
                    class_names=list(self.data.class_names),
                    arch=self.parts.model.arch,
                    device=str(self.device),
                    precision=precision_name(self.parts.amp_dtype),
                    world_size=self.ctx.world_size,
                    checkpoint_dir=self.directory,
                    resumed_from=self.resumed_from,
                    optimizer_restarted=self.optimizer_restarted,
                )
                self.observer.on_start(plan)
                while not self._finished():
                    self.run_epoch()
            except KeyboardInterrupt as exc:
                self._interrupted(exc)
            except RuntimeError:
                if not self.stop:
                    raise
                self._interrupted(None)  # a loader worker died of the same signal

    def _early_stop_due(self) -> bool:
        state, patience = self.state, self.cfg.early_stopping_patience
        stale = bool(patience) and state.epochs_without_improvement >= patience
        return stale and state.batch == 0 and state.epoch < self.cfg.num_epochs

    def _finished(self) -> bool:
        return self.state.stopped_early or self.state.epoch >= self.cfg.num_epochs

    def run_epoch(self) -> None:
        """The next epoch (or the rest of one interrupted): train, validate, save."""
        epoch, done, partial = self.state.epoch + 1, self.state.batch, self.state.partial
        self._epoch_t0 = time.perf_counter()
        total = self.data.sampler.num_batches()
        self.data.sampler.set_epoch(epoch, skip=done * self.cfg.batch_size)
        self.observer.on_epoch_start(epoch, total, done)
        # partial's loss_sum and correct live on the device until the epoch ends
        sums = torch.tensor(
            [partial["loss_sum"], partial["correct"]], dtype=torch.float64, device=self.device
        )
        self._live_sums = sums
        seconds_before, session_images = partial["train_seconds"], 0
        img_size = self.settings.dataset.img_size
        self.parts.net.train()
        started = time.perf_counter()
        for images, labels, unreadable in self.data.train_loader:
            self.clean = False
            loss, correct = self.parts.step(
                images, labels, self.device, stand_in=self.ctx.enabled, img_size=img_size
            )
            n = labels.numel()
            sums[0] += loss.detach().double() * n
            sums[1] += correct
            session_images += n
            elapsed = time.perf_counter() - started
            partial["count"] += n
            partial["skipped"] += len(unreadable)
            self.skipped.update((s.path, s.to_dict()) for s in unreadable)
            partial["train_seconds"] = seconds_before + elapsed
            self.state.batch += 1
            self.clean = True
            batch = self.state.batch
            if self.ctx.main and (batch % self.cfg.log_every == 0 or batch == total):
                loss_sum, hits = sums.tolist()
                count, rate = max(partial["count"], 1.0), session_images / max(elapsed, 1e-9)
                progress = BatchProgress(epoch, batch, total, loss_sum / count, hits / count, rate)
                self.observer.on_batch(progress)
            if self.stop.signum is not None:
                raise Interrupted(self.stop.signum)
        self._flush_sums()
        self.observer.on_validate(epoch)
        val = eval_sums(
            self.parts.model,
            self.data.val_loader,
            self.device,
            amp_dtype=self.parts.amp_dtype,
            channels_last=self.parts.channels_last,
            should_stop=self.stop.__bool__,
            skipped_into=self.skipped,
        )
        self._end_epoch(epoch, val)

    def _flush_sums(self) -> None:
        if self._live_sums is not None:
            loss_sum, correct = self._live_sums.tolist()
            self.state.partial["loss_sum"], self.state.partial["correct"] = loss_sum, correct
            self._live_sums = None

    def _end_epoch(self, epoch: int, val: Tensor) -> None:
        """Sum the epoch's figures over every process, step the schedule, save and report."""
        partial = self.state.partial
        keys = ("loss_sum", "correct", "count", "skipped")
        train = torch.tensor([partial[k] for k in keys], dtype=torch.float64, device=self.device)
        both = all_reduce(torch.cat([train, val]), self.ctx).tolist()
        t_loss, t_correct, t_count, t_skipped, v_loss, v_correct, v_count, v_skipped = both
        if v_count == 0:
            raise CamtoolError("no readable held-out image: cannot validate; check the dataset")
        train_seconds = partial["train_seconds"]
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=t_loss / max(t_count, 1),
            train_acc=t_correct / max(t_count, 1),
            val_loss=v_loss / v_count,
            val_acc=v_correct / v_count,
            lr=float(self.parts.optimizer.param_groups[0]["lr"]),
            seconds=self._epoch_seconds(),
            images_per_s=t_count / train_seconds if train_seconds > 0 else 0.0,
            skipped=int(t_skipped + v_skipped),
        )
        self.clean = False
        step_scheduler(self.parts.scheduler, metrics.val_loss)
        self.state.end_epoch(asdict(metrics))
        self.state.stopped_early = self._early_stop_due()
        self.clean = True
        if self.ctx.main:
            self.files.save_epoch(self.state)
        self.observer.on_epoch_end(metrics)

    def _epoch_seconds(self) -> float:
        """Wall time of the epoch in progress, including any part run before a resume."""
        now = 0.0 if self._epoch_t0 is None else time.perf_counter() - self._epoch_t0
        return self.state.partial["seconds"] + now

    def _interrupted(self, exc: BaseException | None) -> None:
        """Save where the loop stands (if it stands somewhere clean) and say how to go on."""
        signum = self.stop.signum if self.stop.signum is not None else exc
        code, word = interrupt_exit_code(signum), interrupt_word(signum)
        if self.clean:
            self._flush_sums()
            if self.state.batch > 0:
                self.state.partial["seconds"] = self._epoch_seconds()
            if self.ctx.main:
                self.files.save(LAST_FILE, self.state, complete=True)
        if (self.directory / LAST_FILE).is_file():
            hint = f"resume with camtool train --resume{dir_flag(self.directory)}"
            raise CamtoolError(f"{word}; {hint}", exit_code=code)
        raise CamtoolError(f"{word} before anything was saved", exit_code=code)

    def result(self, seconds: float) -> TrainResult:
        directory = self.directory
        history = [EpochMetrics(**h) for h in self.state.history]
        numbered = sorted(directory.glob(EPOCH_GLOB)) if self.ctx.main else []
        return TrainResult(
            best_val_acc=max(self.state.best_val_acc, 0.0),
            best_epoch=self.state.best_epoch,
            epochs_run=self.state.epoch,
            num_epochs=self.cfg.num_epochs,
            stopped_early=self.state.stopped_early,
            seconds=seconds,
            history=history,
            checkpoint_dir=directory,
            best_checkpoint=directory / BEST_FILE if history else None,
            last_checkpoint=directory / LAST_FILE if history else None,
            numbered_checkpoints=numbered,
            metrics_file=directory / METRICS_FILE,
            curves_file=directory / CURVES_FILE,
            settings_file=directory / SETTINGS_FILE,
            class_names=list(self.data.class_names),
            device=str(self.device),
            precision=precision_name(self.parts.amp_dtype),
            world_size=self.ctx.world_size,
            rank=self.ctx.rank,
            resumed_from=self.resumed_from,
            skipped=unique_skipped(self.skipped.values()),
        )


def train(
    settings: Settings,
    *,
    resume: Path | bool | None = None,
    observer: TrainObserver | None = None,
    crop_scale: tuple[float, float] = DEFAULT_CROP_SCALE,
    overwrite: bool = False,
) -> TrainResult:
    """Train a CAM network as ``settings`` say; :mod:`camtool.training.checkpoints` lists the files.

    Args:
        settings: the resolved settings.
        resume: a checkpoint to continue, or ``True`` for ``<checkpoint_dir>/last.pt``; its stored
            settings apply except those set explicitly (file, env var, flag).
        observer: progress callbacks (rank 0 only).
        crop_scale: area range of the training random crop (see ``camtool.data.datasets``).
        overwrite: for a new run, clear an earlier run's files instead of refusing to start.

    Returns:
        What happened; ranks other than 0 get the same figures but wrote nothing.

    Raises:
        ConfigError: settings that cannot work (e.g. ``model.num_classes`` against the data).
        CamtoolError: no data, an unusable checkpoint, an earlier run in the folder (without
            ``overwrite``), the folder locked by another run, a failed write, or Ctrl-C /
            SIGTERM (exit code 130 / 143, after saving ``last.pt``).
    """
    started = time.perf_counter()
    settings, loaded = prepare_resume(settings, resume)
    ctx = dist_from_env()
    device = local_device(resolve_device(settings.runtime.device.value), ctx)
    directory = Path(settings.training.checkpoint_dir)
    lock = folder_lock(directory, "train") if ctx.main else contextlib.nullcontext()
    with lock, process_group(ctx, device):
        if ctx.main:
            remove_stale_temps(directory)
        if loaded is None:  # every rank checks; only rank 0 clears, the others wait for it
            prepare_fresh_dir(directory, overwrite, clear=ctx.main)
            barrier(ctx)
        try:
            watch = observer if observer is not None and ctx.main else SilentObserver()
            trainer = _Trainer(settings, ctx, device, watch, loaded, crop_scale)
            trainer.run()
        except RuntimeError as exc:
            refuse_out_of_gpu_memory(exc, "a smaller --batch-size or --img-size")
            raise
        return trainer.result(time.perf_counter() - started)
