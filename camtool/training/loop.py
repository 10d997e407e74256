"""``camtool train``'s core: fine-tune a CAM network on an image folder, resumably.

One call, :func:`train`, runs the whole job: data splits (``camtool.data.datasets``), the model
(``camtool.core.model.build_model``), the optimizer and schedule, early stopping, checkpoints and
logs.
What it writes into ``training.checkpoint_dir`` (each file atomically)::

    camtool-settings.toml   the resolved settings
    metrics.jsonl           one JSON line per finished epoch
    curves.png              loss and accuracy per epoch
    last.pt                 after every epoch (and on Ctrl-C, mid-epoch)
    best.pt                 whenever the held-out accuracy improves
    epoch_003.pt ...        every ``save_every`` epochs

Every checkpoint is resumable: its ``training`` entry holds the optimizer, scheduler and grad-scaler
state, the position (epochs done, batches done in the next one), the best accuracy, the epochs
without improvement, the history and the random states, all loadable with
``torch.load(weights_only=True)``.

Exact resumption. The order of epoch ``e`` is a permutation drawn from ``(seed, e)`` (a
``DistributedSampler`` seeded with ``seed`` and ``set_epoch(e)``), and each training image's
augmentation draws from torch's generator re-seeded from ``(seed, e, index)``, so an epoch's
batches do not depend on what ran before, on the number of loader workers, or on an interruption:
a resumed run (even from mid-epoch) ends with the same weights as an uninterrupted one (bit for
bit on the CPU). The last partial batch of an epoch is dropped (when there is at least one full
batch), which also keeps BatchNorm away from batches of a single image.

Ctrl-C: the first press finishes the batch in progress, writes ``last.pt`` at that point and raises
:class:`~camtool.errors.CamtoolError` with exit code 130; ``camtool train --resume`` continues from
there. A second press stops at once (``last.pt`` then keeps the last finished epoch). A killed run
loses at most the epoch in progress.

Distributed: under ``torchrun --nproc_per_node N`` (``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` set) the
process group is started (NCCL on CUDA, Gloo on the CPU), the model wrapped in
``DistributedDataParallel``, the data sharded, and the epoch metrics all-reduced; only rank 0
reports progress and writes files.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from camtool.choices import Optimizer, Scheduler
from camtool.core.checkpoint import load_checkpoint, save_checkpoint
from camtool.core.device import resolve_device
from camtool.core.imagenet import IMAGENET_MEAN, IMAGENET_STD
from camtool.core.model import CAMNet, build_model
from camtool.data.datasets import DEFAULT_CROP_SCALE, make_loader, make_splits
from camtool.errors import EXIT_INTERRUPTED, CamtoolError, ConfigError
from camtool.fsutil import atomic_write_bytes
from camtool.settings import (
    SETTINGS_FILE,
    Settings,
    TrainingSettings,
    load_settings,
    write_settings,
)
from camtool.training.distributed import (
    DistContext,
    all_reduce,
    barrier,
    dist_from_env,
    process_group,
)
from camtool.training.logs import curves_png, write_metrics
from camtool.training.reproducibility import (
    EpochSampler,
    SeededItems,
    rng_state,
    seed_everything,
    set_rng_state,
)
from camtool.training.types import (
    BatchProgress,
    EpochMetrics,
    SilentObserver,
    TrainObserver,
    TrainPlan,
    TrainResult,
)

__all__ = [
    "BEST_FILE",
    "CURVES_FILE",
    "LAST_FILE",
    "METRICS_FILE",
    "PLATEAU_FACTOR",
    "PLATEAU_PATIENCE",
    "BatchProgress",
    "EpochMetrics",
    "Evaluation",
    "SilentObserver",
    "TrainObserver",
    "TrainPlan",
    "TrainResult",
    "build_optimizer",
    "build_scheduler",
    "epoch_file",
    "evaluate",
    "train",
]

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
LAST_FILE = "last.pt"
BEST_FILE = "best.pt"
PLATEAU_FACTOR = 0.1
"""``reduce_lr``: the learning rate is multiplied by this ..."""
PLATEAU_PATIENCE = 2
"""... after this many epochs without a lower held-out loss."""

_STATE_VERSION = 1

# The former private names of what moved to camtool.training.reproducibility (the tests use them).
_rng_state = rng_state
_set_rng_state = set_rng_state
_EpochSampler = EpochSampler
_SeededItems = SeededItems


def epoch_file(epoch: int) -> str:
    """The name of the numbered checkpoint written after ``epoch``: ``epoch_003.pt``."""
    return f"epoch_{epoch:03d}.pt"


# --------------------------------------------------------------------------------------------
# Optimizer, schedule, evaluation


def build_optimizer(model: nn.Module, training: TrainingSettings) -> torch.optim.Optimizer:
    """The optimizer ``training.optimizer`` names, with its learning rate and weight decay.

    ``adam`` (L2 decay added to the gradient), ``adamw`` (decoupled decay) or ``sgd`` (with
    ``training.momentum``).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    lr, decay = training.learning_rate, training.weight_decay
    if training.optimizer == Optimizer.sgd:
        return torch.optim.SGD(params, lr=lr, momentum=training.momentum, weight_decay=decay)
    if training.optimizer == Optimizer.adamw:
        return torch.optim.AdamW(params, lr=lr, weight_decay=decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=decay)


def build_scheduler(optimizer: torch.optim.Optimizer, training: TrainingSettings) -> Any:
    """The learning-rate schedule ``training.scheduler`` names, stepped once per epoch.

    ``cosine``: cosine annealing to 0 over ``num_epochs``. ``reduce_lr``: multiply by
    :data:`PLATEAU_FACTOR` after :data:`PLATEAU_PATIENCE` epochs without a lower held-out loss.
    """
    if training.scheduler == Scheduler.cosine:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=training.num_epochs)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE
    )


@dataclass
class Evaluation:
    """Loss and accuracy of a model on a dataset.

    Attributes:
        loss: mean cross-entropy.
        accuracy: fraction of images classified right.
        images: images evaluated.
        skipped: unreadable images left out.
        skipped_files: ``{"path", "error"}`` of each of them.
    """

    loss: float
    accuracy: float
    images: int
    skipped: int
    skipped_files: list[dict[str, str]] = field(default_factory=list)


def evaluate(
    model: nn.Module,
    loader: DataLoader[Any],
    device: torch.device,
    *,
    amp_dtype: torch.dtype | None = None,
) -> Evaluation:
    """Evaluate ``model`` on every batch of ``loader`` (batches of ``collate_skip_none``).

    Raises:
        CamtoolError: the loader yielded no readable image.
    """
    named: dict[str, str] = {}
    sums = _eval_sums(
        model, loader, device, amp_dtype=amp_dtype, channels_last=False, skipped_into=named
    )
    loss_sum, correct, count, skipped = (float(v) for v in sums.tolist())
    if count == 0:
        raise CamtoolError("no readable image to evaluate")
    files = [{"path": p, "error": e} for p, e in named.items()]
    return Evaluation(loss_sum / count, correct / count, int(count), int(skipped), files)


def _eval_sums(
    model: nn.Module,
    loader: DataLoader[Any],
    device: torch.device,
    *,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    should_stop: Any = None,
    skipped_into: dict[str, str] | None = None,
) -> Tensor:
    """``[loss sum, hits, images, skipped]`` of ``model`` over ``loader`` (float64, on device).

    The unreadable images met are added to ``skipped_into`` (path -> reason), if given.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    try:
        with torch.inference_mode():
            for images, labels, skipped in loader:
                sums[3] += len(skipped)
                if skipped_into is not None:
                    skipped_into.update((s.path, s.error) for s in skipped)
                if labels.numel():
                    images, labels = _to_device(images, labels, device, channels_last)
                    with _autocast(device, amp_dtype):
                        logits = model(images)
                    sums[0] += F.cross_entropy(logits.float(), labels, reduction="sum")
                    sums[1] += (logits.argmax(dim=1) == labels).sum()
                    sums[2] += labels.numel()
                if should_stop is not None and should_stop():
                    raise KeyboardInterrupt
    finally:
        model.train(was_training)
    return sums


def _to_device(
    images: Tensor, labels: Tensor, device: torch.device, channels_last: bool
) -> tuple[Tensor, Tensor]:
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(device, non_blocking=True)


def _autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[Any]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 on CUDA where supported, else fp16; ``None`` (fp32) off CUDA or with amp off."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _precision_name(dtype: torch.dtype | None) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Checkpoint state


def _empty_partial() -> dict[str, float]:
    return {
        "loss_sum": 0.0,
        "correct": 0.0,
        "count": 0.0,
        "skipped": 0.0,
        "seconds": 0.0,
        "train_seconds": 0.0,
    }


@dataclass
class _State:
    """The loop's position and bookkeeping: everything a checkpoint needs besides the tensors."""

    epoch: int = 0  #: epochs finished
    batch: int = 0  #: batches finished in epoch ``epoch + 1``
    best_val_acc: float = -1.0
    best_epoch: int = 0
    stale: int = 0  #: epochs since the best one
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    partial: dict[str, float] = field(default_factory=_empty_partial)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "best_val_acc": self.best_val_acc,
            "best_epoch": self.best_epoch,
            "epochs_without_improvement": self.stale,
            "stopped_early": self.stopped_early,
            "history": [dict(h) for h in self.history],
            "partial": dict(self.partial),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _State:
        partial = _empty_partial()
        partial.update({k: float(v) for k, v in dict(data.get("partial") or {}).items()})
        return cls(
            epoch=int(data["epoch"]),
            batch=int(data.get("batch", 0)),
            best_val_acc=float(data["best_val_acc"]),
            best_epoch=int(data["best_epoch"]),
            stale=int(data["epochs_without_improvement"]),
            stopped_early=bool(data.get("stopped_early", False)),
            history=[dict(h) for h in data.get("history", [])],
            partial=partial,
        )


# --------------------------------------------------------------------------------------------
# Settings on resume


def _absolute_data_dir(dumped: dict[str, Any]) -> dict[str, Any]:
    """Settings as stored in a checkpoint: ``dataset.data_dir`` made absolute, so that
    ``camtool eval`` finds the data from any folder (and after the checkpoint is moved)."""
    dataset = dict(dumped.get("dataset") or {})
    if dataset.get("data_dir"):
        dataset["data_dir"] = str(Path(dataset["data_dir"]).absolute())
    return {**dumped, "dataset": dataset}


def _explicit_values(settings: Settings) -> dict[str, dict[str, Any]]:
    """The values that were set (by a file, env var, flag or assignment), not defaulted."""
    dumped = settings.model_dump(mode="json")
    explicit: dict[str, dict[str, Any]] = {}
    for section in type(settings).model_fields:
        given = getattr(settings, section).model_fields_set
        explicit[section] = {key: dumped[section][key] for key in given}
    return explicit


def _resume_settings(settings: Settings, stored: Mapping[str, Any], path: Path) -> Settings:
    """The checkpoint's settings with the values set now (files, env vars, flags) on top."""
    merged: dict[str, Any] = {k: dict(v) for k, v in stored.items() if isinstance(v, Mapping)}
    for section, values in _explicit_values(settings).items():
        merged.setdefault(section, {}).update(values)
    try:
        return load_settings(None, merged)
    except ConfigError as exc:
        raise ConfigError(f"cannot resume from {path}: {exc.message}") from None


def _resume_path(resume: Path | bool | None, checkpoint_dir: Path) -> Path | None:
    if resume is None or resume is False:
        return None
    path = Path(checkpoint_dir) / LAST_FILE if resume is True else Path(resume)
    if not path.is_file():
        raise CamtoolError(f"nothing to resume: {path} not found")
    return path


# --------------------------------------------------------------------------------------------
# Output files


_OUR_FILES = (LAST_FILE, BEST_FILE, METRICS_FILE, CURVES_FILE)


def _prepare_fresh_dir(directory: Path, overwrite: bool) -> None:
    """Refuse to mix a new run into an old one, or (``overwrite``) clear the old run's files."""
    if not overwrite:
        if (directory / LAST_FILE).exists():
            raise CamtoolError(
                f"{directory} already holds a training run ({LAST_FILE}); continue it with "
                "camtool train --resume, or choose another --checkpoint-dir"
            )
        return
    if directory.is_dir():
        stale = [directory / name for name in _OUR_FILES]
        stale += list(directory.glob("epoch_[0-9][0-9][0-9]*.pt"))
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


# --------------------------------------------------------------------------------------------
# The loop


class _Trainer:
    """One training job; :func:`train` builds it and calls :meth:`run`."""

    def __init__(
        self,
        settings: Settings,
        ctx: DistContext,
        device: torch.device,
        observer: TrainObserver,
        resume: Path | None,
        payload: Any,
        crop_scale: tuple[float, float],
        overwrite: bool,
    ) -> None:
        self.settings = settings
        self.cfg = settings.training
        self.ctx = ctx
        self.device = device
        self.observer = observer
        self.resumed_from = resume
        self.directory = Path(self.cfg.checkpoint_dir)
        self.stop_requested = False
        self.clean = True
        self.numbered: list[Path] = []
        self._live_sums: Tensor | None = None
        self.skipped: dict[str, str] = {}  #: unreadable images met by this process: path -> why
        if resume is None:
            _prepare_fresh_dir(self.directory, overwrite)
        self._build_data(crop_scale)
        self._build_model(payload)
        self.state = _State()
        if payload is not None:
            self._restore(payload.training)

    # -- construction ------------------------------------------------------------------------

    def _build_data(self, crop_scale: tuple[float, float]) -> None:
        data = self.settings.dataset
        seed = self.cfg.seed
        splits = make_splits(
            data.data_dir,
            data.name.value,
            data.img_size,
            data.val_size,
            seed=seed,
            crop_scale=crop_scale,
            max_pixels=self.settings.cam.max_pixels,
        )
        self.class_names = list(splits.class_names)
        wanted = self.settings.model.num_classes
        if wanted is not None and wanted != len(self.class_names):
            raise ConfigError(
                f"model.num_classes is {wanted} but the dataset has {len(self.class_names)} "
                f"classes ({', '.join(self.class_names)}); leave num_classes unset"
            )
        pin = self.device.type == "cuda"
        inner: DistributedSampler[Any] = DistributedSampler(
            splits.train,
            num_replicas=self.ctx.world_size,
            rank=self.ctx.rank,
            shuffle=True,
            seed=seed,
            drop_last=False,
        )
        self.sampler = EpochSampler(inner, self.cfg.batch_size)
        self.train_images = len(splits.train)  # type: ignore[arg-type]
        self.train_loader = make_loader(
            SeededItems(splits.train, seed),
            self.cfg.batch_size,
            shuffle=False,
            workers=self.cfg.workers,
            pin_memory=pin,
            sampler=self.sampler,  # type: ignore[arg-type]  # keys are (epoch, index)
            seed=seed,
        )
        val_count = len(splits.val)  # type: ignore[arg-type]
        self.val_images = val_count
        shard = Subset(splits.val, range(self.ctx.rank, val_count, self.ctx.world_size))
        self.val_loader = make_loader(
            shard, self.cfg.batch_size, shuffle=False, workers=self.cfg.workers, pin_memory=pin
        )

    def _build_model(self, payload: Any) -> None:
        spec = self.settings.model
        seed_everything(self.cfg.seed)
        if payload is None:
            model = build_model(
                spec.arch,
                len(self.class_names),
                pretrained=spec.pretrained,
                output_stride=spec.output_stride,
            )
        else:
            model = payload.model
            if payload.class_names != self.class_names:
                raise CamtoolError(
                    f"cannot resume: the checkpoint's classes ({', '.join(payload.class_names)}) "
                    f"differ from the dataset's ({', '.join(self.class_names)})"
                )
            stride = model.output_stride if spec.output_stride is None else spec.output_stride
            if (model.arch, model.output_stride) != (spec.arch, stride):
                raise ConfigError(
                    f"cannot resume: the checkpoint holds a {model.arch} (output stride "
                    f"{model.output_stride}), the settings ask for {spec.arch} ({stride})"
                )
        self.channels_last = self.device.type == "cuda"
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True
        self.model: CAMNet = model
        self.net: nn.Module = model
        if self.ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(model, device_ids=ids)
        self.amp_dtype = _amp_dtype(self.device, self.cfg.amp)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.optimizer = build_optimizer(self.model, self.cfg)
        self.scheduler = build_scheduler(self.optimizer, self.cfg)

    def _restore(self, training: Mapping[str, Any] | None) -> None:
        if not training or "optimizer" not in training:
            raise CamtoolError(
                f"{self.resumed_from} holds no training state to resume; start a new run instead"
            )
        try:
            self.optimizer.load_state_dict(training["optimizer"])
            self.scheduler.load_state_dict(training["scheduler"])
            if self.scaler is not None and training.get("scaler"):
                self.scaler.load_state_dict(training["scaler"])
            self.state = _State.from_dict(training)
            self.state.stopped_early = self._early_stop_due()
            set_rng_state(training["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CamtoolError(
                f"cannot resume from {self.resumed_from}: its training state does not fit "
                f"({type(exc).__name__}: {exc})"
            ) from None

    # -- checkpoints -------------------------------------------------------------------------

    def _training_state(self) -> dict[str, Any]:
        state = self.state.to_dict()
        state.update(
            {
                "state_version": _STATE_VERSION,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": None if self.scaler is None else self.scaler.state_dict(),
                "rng": rng_state(),
                "world_size": self.ctx.world_size,
            }
        )
        return state

    def _save(self, name: str) -> Path:
        return save_checkpoint(
            self.directory / name,
            self.model,
            class_names=self.class_names,
            img_size=self.settings.dataset.img_size,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            settings=_absolute_data_dir(self.settings.model_dump(mode="json")),
            training=self._training_state(),
        )

    def _write_logs(self) -> None:
        write_metrics(self.directory / METRICS_FILE, self.state.history)
        if self.state.history:
            atomic_write_bytes(self.directory / CURVES_FILE, curves_png(self.state.history))

    # -- running -----------------------------------------------------------------------------

    def run(self) -> None:
        """Train until the epoch budget is spent or early stopping fires."""
        barrier(self.ctx)  # every process has checked the folder before rank 0 writes to it
        if self.ctx.main:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_settings(self.directory, self.settings)
            if self.resumed_from is not None:
                self._write_logs()
        if self._finished():
            return
        with self._deferred_sigint():
            try:
                if self.ctx.main:
                    self.observer.on_start(self._plan())
                while not self._finished():
                    self._run_epoch()
            except KeyboardInterrupt:
                self._interrupted()
            except RuntimeError:
                if not self.stop_requested:
                    raise
                self._interrupted()  # a loader worker died of the same Ctrl-C

    def _early_stop_due(self) -> bool:
        patience = self.cfg.early_stopping_patience
        state = self.state
        return bool(
            patience
            and state.stale >= patience
            and state.batch == 0
            and state.epoch < self.cfg.num_epochs
        )

    def _finished(self) -> bool:
        return self.state.stopped_early or self.state.epoch >= self.cfg.num_epochs

    def _plan(self) -> TrainPlan:
        return TrainPlan(
            num_epochs=self.cfg.num_epochs,
            start_epoch=self.state.epoch + 1,
            batches_per_epoch=self._batches_per_epoch(),
            train_images=self.train_images,
            val_images=self.val_images,
            class_names=list(self.class_names),
            arch=self.model.arch,
            device=str(self.device),
            precision=_precision_name(self.amp_dtype),
            world_size=self.ctx.world_size,
            checkpoint_dir=self.directory,
            resumed_from=self.resumed_from,
        )

    def _batches_per_epoch(self) -> int:
        return math.ceil(self.sampler.epoch_length() / self.cfg.batch_size)

    @contextlib.contextmanager
    def _deferred_sigint(self) -> Iterator[None]:
        """First Ctrl-C: stop after the batch in progress. Second: stop now."""
        if self.ctx.enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _run_epoch(self) -> None:
        epoch = self.state.epoch + 1
        self._epoch_t0 = time.perf_counter()
        total = self._batches_per_epoch()
        done = self.state.batch
        self.sampler.set_epoch(epoch, skip=done * self.cfg.batch_size)
        if self.ctx.main:
            self.observer.on_epoch_start(epoch, total, done)
        self._train_batches(epoch, total)
        if self.ctx.main:
            self.observer.on_validate(epoch)
        val = _eval_sums(
            self.model,
            self.val_loader,
            self.device,
            amp_dtype=self.amp_dtype,
            channels_last=self.channels_last,
            should_stop=lambda: self.stop_requested,
            skipped_into=self.skipped,
        )
        self._end_epoch(epoch, val)

    def _train_batches(self, epoch: int, total: int) -> None:
        """Run the epoch's remaining batches, keeping ``state`` resumable after each one."""
        partial = self.state.partial
        sums = torch.tensor(
            [partial["loss_sum"], partial["correct"]], dtype=torch.float64, device=self.device
        )
        self._live_sums = sums  # partial's loss_sum and correct live here until the epoch ends
        seconds_before = partial["train_seconds"]
        session_images = 0
        log_every = self.cfg.log_every
        self.net.train()
        started = time.perf_counter()
        for images, labels, unreadable in self.train_loader:
            self.clean = False
            loss, correct = self._step(images, labels)
            n = labels.numel()
            sums[0] += loss.detach().double() * n
            sums[1] += correct
            session_images += n
            elapsed = time.perf_counter() - started
            partial["count"] += n
            partial["skipped"] += len(unreadable)
            self.skipped.update((s.path, s.error) for s in unreadable)
            partial["train_seconds"] = seconds_before + elapsed
            self.state.batch += 1
            self.clean = True
            if self.ctx.main and (self.state.batch % log_every == 0 or self.state.batch == total):
                loss_sum, correct_sum = sums.tolist()
                count = max(partial["count"], 1.0)
                self.observer.on_batch(
                    BatchProgress(
                        epoch,
                        self.state.batch,
                        total,
                        loss_sum / count,
                        correct_sum / count,
                        session_images / max(elapsed, 1e-9),
                    )
                )
            if self.stop_requested:
                raise KeyboardInterrupt
        self._flush_sums()

    def _flush_sums(self) -> None:
        """Copy the running loss and hit sums of the epoch into ``state.partial``."""
        if self._live_sums is not None:
            loss_sum, correct = self._live_sums.tolist()
            self.state.partial["loss_sum"], self.state.partial["correct"] = loss_sum, correct
            self._live_sums = None

    def _step(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """One optimisation step; returns the batch's mean loss and its number of hits."""
        empty = labels.numel() == 0
        if empty:
            if not self.ctx.enabled:
                return torch.zeros((), device=self.device), torch.zeros((), device=self.device)
            # Every process must take part in the gradient all-reduce: a zero-weight stand-in.
            size = self.settings.dataset.img_size
            images, labels = torch.zeros(1, 3, size, size), torch.zeros(1, dtype=torch.long)
        images, labels = _to_device(images, labels, self.device, self.channels_last)
        with _autocast(self.device, self.amp_dtype):
            logits = self.net(images)
            loss = F.cross_entropy(logits.float(), labels)
        if empty:
            loss = loss * 0.0
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        if empty:
            zero = torch.zeros((), device=self.device)
            return zero, zero
        return loss, (logits.argmax(dim=1) == labels).sum()

    def _end_epoch(self, epoch: int, val: Tensor) -> None:
        partial = self.state.partial
        train = torch.tensor(
            [partial["loss_sum"], partial["correct"], partial["count"], partial["skipped"]],
            dtype=torch.float64,
            device=self.device,
        )
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
            lr=float(self.optimizer.param_groups[0]["lr"]),
            seconds=self._epoch_seconds(),
            images_per_s=t_count / train_seconds if train_seconds > 0 else 0.0,
            skipped=int(t_skipped + v_skipped),
        )
        self.clean = False
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(metrics.val_loss)
        else:
            self.scheduler.step()
        state = self.state
        improved = metrics.val_acc > state.best_val_acc
        if improved:
            state.best_val_acc, state.best_epoch, state.stale = metrics.val_acc, epoch, 0
        else:
            state.stale += 1
        state.history.append(asdict(metrics))
        state.epoch, state.batch, state.partial = epoch, 0, _empty_partial()
        state.stopped_early = self._early_stop_due()
        self.clean = True
        if self.ctx.main:
            self._save(LAST_FILE)
            if improved:
                self._save(BEST_FILE)
            if epoch % self.cfg.save_every == 0:
                self.numbered.append(self._save(epoch_file(epoch)))
            self._write_logs()
            self.observer.on_epoch_end(metrics)

    def _epoch_seconds(self) -> float:
        """Wall time of the epoch in progress, including any part run before a resume."""
        t0 = getattr(self, "_epoch_t0", None)
        now = 0.0 if t0 is None else time.perf_counter() - t0
        return self.state.partial["seconds"] + now

    def _interrupted(self) -> None:
        """Save where the loop stands (if it stands somewhere clean) and say how to go on."""
        saved = False
        if self.clean:
            self._flush_sums()
            if self.state.batch > 0:
                self.state.partial["seconds"] = self._epoch_seconds()
            if self.ctx.main:
                self._save(LAST_FILE)
                saved = True
        if saved or (self.directory / LAST_FILE).is_file():
            where = ""
            if self.directory != Path("checkpoints"):
                where = f" --checkpoint-dir {self.directory}"
            raise CamtoolError(
                f"interrupted; resume with camtool train --resume{where}",
                exit_code=EXIT_INTERRUPTED,
            )
        raise CamtoolError("interrupted before anything was saved", exit_code=EXIT_INTERRUPTED)

    def result(self, seconds: float) -> TrainResult:
        directory = self.directory
        history = [EpochMetrics(**h) for h in self.state.history]
        best = directory / BEST_FILE
        last = directory / LAST_FILE
        numbered = sorted(directory.glob("epoch_[0-9][0-9][0-9]*.pt")) if self.ctx.main else []
        return TrainResult(
            best_val_acc=max(self.state.best_val_acc, 0.0),
            best_epoch=self.state.best_epoch,
            epochs_run=self.state.epoch,
            num_epochs=self.cfg.num_epochs,
            stopped_early=self.state.stopped_early,
            seconds=seconds,
            history=history,
            checkpoint_dir=directory,
            best_checkpoint=best if history else None,
            last_checkpoint=last if history else None,
            numbered_checkpoints=numbered or self.numbered,
            metrics_file=directory / METRICS_FILE,
            curves_file=directory / CURVES_FILE,
            settings_file=directory / SETTINGS_FILE,
            class_names=list(self.class_names),
            device=str(self.device),
            precision=_precision_name(self.amp_dtype),
            world_size=self.ctx.world_size,
            rank=self.ctx.rank,
            resumed_from=self.resumed_from,
            skipped=[{"path": p, "error": e} for p, e in sorted(self.skipped.items())],
        )


def train(
    settings: Settings,
    *,
    resume: Path | bool | None = None,
    observer: TrainObserver | None = None,
    crop_scale: tuple[float, float] = DEFAULT_CROP_SCALE,
    overwrite: bool = False,
) -> TrainResult:
    """Train a CAM network as ``settings`` say; see the module docstring for what is written.

    Args:
        settings: the resolved settings.
        resume: a checkpoint to continue, or ``True`` for ``<checkpoint_dir>/last.pt``. The run
            continues with the settings stored in the checkpoint, except those set explicitly
            in ``settings`` (by a file, an env var or a flag), e.g. ``training.num_epochs`` to
            train longer.
        observer: progress callbacks (rank 0 only).
        crop_scale: area range of the training random crop (see ``camtool.data.datasets``).
        overwrite: for a new run, clear an earlier run's files from the checkpoint folder
            instead of refusing to start.

    Returns:
        What happened; on ranks other than 0 the same figures, but nothing was written.

    Raises:
        ConfigError: settings that cannot work (e.g. ``model.num_classes`` against the data).
        CamtoolError: no data, an unusable checkpoint, or Ctrl-C (exit code 130, after saving
            ``last.pt``).
    """
    started = time.perf_counter()
    path = _resume_path(resume, Path(settings.training.checkpoint_dir))
    payload = None
    if path is not None:
        payload = load_checkpoint(path)
        settings = _resume_settings(settings, payload.settings, path)
    ctx = dist_from_env()
    device = resolve_device(settings.training.device.value)
    if device.type == "cuda" and ctx.enabled:
        device = torch.device("cuda", ctx.local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
    with process_group(ctx, device):
        try:
            trainer = _Trainer(
                settings,
                ctx,
                device,
                observer or SilentObserver(),
                path,
                payload,
                crop_scale,
                overwrite,
            )
            trainer.run()
        except torch.cuda.OutOfMemoryError:
            raise CamtoolError(
                "out of GPU memory; try a smaller --batch-size or --img-size"
            ) from None
        return trainer.result(time.perf_counter() - started)
