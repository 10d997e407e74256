"""What ``camtool train`` keeps in its checkpoint folder, and how a run is resumed from it.

``last.pt`` is fully resumable (weights, optimizer moments, schedule, position, RNG states);
``best.pt`` and ``epoch_NNN.pt`` leave out the optimizer moments (``--resume-from`` then starts
them afresh). Beside them: ``metrics.jsonl``, ``curves.png``, ``camtool-settings.toml``. Every file
is written atomically, and ``last.pt`` last: it is the commit point of an epoch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from camtool.core.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from camtool.errors import CamtoolError, ConfigError
from camtool.fsutil import atomic_write_bytes, atomic_write_text
from camtool.settings import Settings, TrainingSettings, load_settings
from camtool.textio import to_json
from camtool.training.build import TrainParts
from camtool.training.reproducibility import rng_state, set_rng_state

__all__ = [
    "BEST_FILE",
    "CURVES_FILE",
    "EPOCH_GLOB",
    "LAST_FILE",
    "METRICS_FILE",
    "LoopState",
    "RunFolder",
    "dir_flag",
    "epoch_file",
    "prepare_fresh_dir",
    "prepare_resume",
    "restore_training",
    "stored_settings",
    "write_metrics",
]

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
LAST_FILE = "last.pt"
BEST_FILE = "best.pt"
EPOCH_GLOB = "epoch_[0-9][0-9][0-9]*.pt"
STATE_VERSION = 1
_RUN_FILES = (LAST_FILE, BEST_FILE, METRICS_FILE, CURVES_FILE)


def epoch_file(epoch: int) -> str:
    """``epoch_003.pt`` for epoch 3."""
    return f"epoch_{epoch:03d}.pt"


def write_metrics(path: Path, history: Sequence[Mapping[str, Any]]) -> None:
    """Write ``history`` to ``path`` atomically, one JSON object per line (``metrics.jsonl``)."""
    lines = "".join(to_json(dict(h), indent=None) + "\n" for h in history)
    atomic_write_text(path, lines)


def _curves_png(history: Sequence[Mapping[str, Any]]) -> bytes:
    """Loss and accuracy per epoch, train and held-out, as PNG bytes (``curves.png``)."""
    from matplotlib.ticker import MaxNLocator

    from camtool.evaluation.classification import agg_figure, png_bytes

    epochs = [int(h["epoch"]) for h in history]
    fig = agg_figure(10, 4)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for ax, key, title in ((loss_ax, "loss", "Loss"), (acc_ax, "acc", "Accuracy")):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], "o-", label="train")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], "o-", label="val (held out)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    acc_ax.set_ylim(0, 1.02)
    return png_bytes(fig, crop=False)


def _empty_partial() -> dict[str, float]:
    keys = ("loss_sum", "correct", "count", "skipped", "seconds", "train_seconds")
    return dict.fromkeys(keys, 0.0)


@dataclass
class LoopState:
    """The loop's position and bookkeeping: what a checkpoint needs besides the tensors."""

    epoch: int = 0  #: epochs finished
    batch: int = 0  #: batches finished in epoch ``epoch + 1``
    best_val_acc: float = -1.0
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    partial: dict[str, float] = field(default_factory=_empty_partial)  #: the epoch's sums so far

    def end_epoch(self, metrics: dict[str, Any]) -> None:
        """Record a finished epoch, the best if its held-out accuracy beats all before (a tie
        does not)."""
        improved = metrics["val_acc"] > self.best_val_acc
        if improved:
            self.best_val_acc, self.best_epoch = metrics["val_acc"], metrics["epoch"]
        self.epochs_without_improvement = 0 if improved else self.epochs_without_improvement + 1
        self.history.append(metrics)
        self.epoch, self.batch, self.partial = metrics["epoch"], 0, _empty_partial()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoopState:
        """The state saved as :func:`~dataclasses.asdict` (``KeyError``: a key is missing)."""
        partial = _empty_partial()
        partial.update({k: float(v) for k, v in dict(data.get("partial") or {}).items()})
        return cls(
            epoch=int(data["epoch"]),
            batch=int(data.get("batch", 0)),
            best_val_acc=float(data["best_val_acc"]),
            best_epoch=int(data["best_epoch"]),
            epochs_without_improvement=int(data["epochs_without_improvement"]),
            stopped_early=bool(data.get("stopped_early", False)),
            history=[dict(h) for h in data.get("history", [])],
            partial=partial,
        )


@dataclass
class RunFolder:
    """Writes one run's files into its checkpoint folder (rank 0 only)."""

    directory: Path
    settings: Settings
    parts: TrainParts
    class_names: list[str]
    world_size: int

    def save(self, name: str, state: LoopState, *, complete: bool) -> Path:
        """Save the model with ``state``, schedule and RNG states; ``complete`` adds the optimizer
        moments and grad scaler for an exact resume (``last.pt``)."""
        parts = self.parts
        optim = parts.optimizer.state_dict()
        if not complete:
            optim = {"state": {}, "param_groups": optim["param_groups"]}
        scaler = parts.scaler if complete else None
        training = {
            **asdict(state),
            "state_version": STATE_VERSION,
            "complete": complete,
            "optimizer": optim,
            "scheduler": parts.scheduler.state_dict(),
            "scaler": None if scaler is None else scaler.state_dict(),
            "rng": rng_state(),
            "world_size": self.world_size,
        }
        return save_checkpoint(
            self.directory / name,
            parts.model,
            class_names=self.class_names,
            img_size=self.settings.dataset.img_size,
            settings=stored_settings(self.settings),
            training=training,
        )

    def save_epoch(self, state: LoopState, *, resumed: bool = False) -> None:
        """best.pt (a new best), epoch_NNN.pt (every ``save_every``), then last.pt (the commit
        point), then the logs; ``resumed``: only those of the first two that a kill kept the
        last epoch from writing, and the logs."""
        at_end = state.epoch > 0 and state.batch == 0
        numbered = state.epoch % self.settings.training.save_every == 0
        due = {BEST_FILE: state.best_epoch == state.epoch, epoch_file(state.epoch): numbered}
        for name, wanted in due.items():
            if at_end and wanted and not (resumed and (self.directory / name).exists()):
                self.save(name, state, complete=False)
        if not resumed:
            self.save(LAST_FILE, state, complete=True)
        write_metrics(self.directory / METRICS_FILE, state.history)
        if state.history:
            atomic_write_bytes(self.directory / CURVES_FILE, _curves_png(state.history))


def restore_training(loaded: LoadedModel, parts: TrainParts) -> LoopState:
    """Load a checkpoint's ``training`` entry into ``parts`` and the RNGs.

    Raises:
        CamtoolError: the entry is missing or does not fit (naming the checkpoint).
    """
    training, source = loaded.training, loaded.source
    if not training or "optimizer" not in training:
        raise CamtoolError(
            f"{source} holds no training state to resume (a plain weights file); start a new "
            "run, e.g. with --overwrite"
        )
    try:
        parts.optimizer.load_state_dict(training["optimizer"])
        parts.scheduler.load_state_dict(training["scheduler"])
        if parts.scaler is not None and training.get("scaler"):
            parts.scaler.load_state_dict(training["scaler"])
        state = LoopState.from_dict(training)
        set_rng_state(training["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CamtoolError(
            f"cannot resume from {source}: its training state does not fit "
            f"({type(exc).__name__}: {exc})"
        ) from None
    return state


def stored_settings(settings: Settings) -> dict[str, Any]:
    """Settings as a checkpoint stores them: ``dataset.data_dir`` absolute, for ``camtool eval``."""
    dumped = settings.model_dump(mode="json")
    dumped["dataset"]["data_dir"] = str(settings.dataset.data_dir.absolute())
    return dumped


def dir_flag(directory: Path) -> str:
    """`` --checkpoint-dir DIR`` unless ``DIR`` is the default."""
    default = TrainingSettings().checkpoint_dir
    return "" if Path(directory) == default else f" --checkpoint-dir {directory}"


def prepare_resume(
    settings: Settings, resume: Path | bool | None
) -> tuple[Settings, LoadedModel | None]:
    """The settings to train with and the checkpoint to resume (``None``: a new run);
    ``resume`` as for :func:`camtool.training.loop.train`.

    Raises:
        CamtoolError: the file is missing, damaged or not a checkpoint.
        ConfigError: the merged settings are invalid.
    """
    if resume is None or resume is False:
        return settings, None
    directory = Path(settings.training.checkpoint_dir)
    path = directory / LAST_FILE if resume is True else Path(resume)
    if not path.is_file():
        raise CamtoolError(f"nothing to resume: {path} not found")
    try:
        loaded = load_checkpoint(path)
    except CamtoolError as exc:
        raise CamtoolError(
            f"cannot resume: {exc.message}; start afresh with camtool train --overwrite"
            f"{dir_flag(directory)}, or resume an earlier epoch_NNN.pt with --resume-from"
        ) from None
    stored = loaded.settings
    merged: dict[str, Any] = {k: dict(v) for k, v in stored.items() if isinstance(v, Mapping)}
    dumped = settings.model_dump(mode="json")
    for section in type(settings).model_fields:  # the values set now, not defaulted, win
        values = merged.setdefault(section, {})
        for key in getattr(settings, section).model_fields_set:
            values[key] = dumped[section][key]
    try:
        return load_settings(None, merged), loaded
    except ConfigError as exc:
        raise ConfigError(f"cannot resume from {path}: {exc.message}") from None


def prepare_fresh_dir(directory: Path, overwrite: bool, *, clear: bool = True) -> None:
    """Refuse to mix a new run into an old one, or (``overwrite``, ``clear``) clear its files.

    Raises:
        CamtoolError: without ``overwrite``, the folder holds a run's files.
    """
    directory = Path(directory)
    found = [directory / n for n in _RUN_FILES if (directory / n).exists()]
    found += sorted(directory.glob(EPOCH_GLOB)) if directory.is_dir() else []
    if not overwrite and found:
        where = dir_flag(directory)
        last = directory / LAST_FILE
        if not last.exists():
            raise CamtoolError(
                f"{directory} already holds files of a training run ({found[0].name}); start "
                f"afresh with camtool train --overwrite{where}, or choose another --checkpoint-dir"
            )
        try:
            load_checkpoint(last)
        except CamtoolError as exc:
            raise CamtoolError(
                f"{directory} holds an unreadable {LAST_FILE} ({exc.message}); start afresh "
                f"with camtool train --overwrite{where}, or choose another --checkpoint-dir"
            ) from None
        raise CamtoolError(
            f"{directory} already holds a training run ({LAST_FILE}); continue it with "
            f"camtool train --resume{where}, start afresh with --overwrite, or choose another "
            "--checkpoint-dir"
        )
    for path in found if overwrite and clear else []:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
