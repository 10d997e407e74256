"""``camtool batch-cam``: class activation maps for whole folders, streamed with flat memory.

The pipeline has three stages that overlap:

1. **decode** -- DataLoader workers open each image (:func:`camtool.data.images.load_image`: size
   check before decoding, EXIF orientation, conversion to RGB) and preprocess it; a worker hands
   back the original pixels and the model input, or the reason the file cannot be used.
2. **explain** -- the main thread groups same-size inputs (the model input keeps the aspect
   ratio, so sizes vary) into batches, holding a bounded number of images while it waits, and
   runs one forward pass per batch (:func:`camtool.core.maps.explain_batch`) on the device.
3. **write** -- a small thread pool draws the maps (:func:`camtool.explain.files.write_maps`),
   finds each map's peak and box (:mod:`camtool.core.localize`) and yields one manifest row, which
   the main thread appends to ``manifest.jsonl`` at once. At most a bounded number of images
   wait to be written.

Nothing grows with the number of images but the list of input paths. An input whose manifest
row says it is done and whose outputs exist is skipped (``--overwrite`` redoes it), so a run
that was interrupted finishes when started again.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from camtool.batch.inputs import (
    InputItem,
    assign_outputs,
    discover_inputs,
    select_shard,
)
from camtool.batch.manifest import (
    MANIFEST_CSV,
    MANIFEST_JSONL,
    ManifestWriter,
    finalize,
    latest_rows,
)
from camtool.core.loading import runner_from_settings
from camtool.core.localize import box_from_map, peak
from camtool.core.maps import CAMBatch, explain_batch, resolve_class
from camtool.core.runner import Runner
from camtool.data.images import IMAGE_SUFFIXES, load_image, preprocess
from camtool.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, CamtoolError, ConfigError
from camtool.explain.files import CamOptions, map_paths, write_maps
from camtool.settings import Settings, write_settings

__all__ = [
    "BOX_THRESHOLD",
    "FORMATS",
    "BatchProgress",
    "BatchReport",
    "run_batch",
]

#: Relative threshold of the box around the largest hot region (CAM paper: 20% of the max).
BOX_THRESHOLD = 0.2
#: Overlay formats.
FORMATS = ("jpg", "png")
_WAIT_BATCHES = 4  # images waiting for a batch, in batch sizes
_WAIT_BYTES = 256 * 2**20  # decoded images waiting for a batch, at most
_WRITE_BYTES = 256 * 2**20  # decoded images waiting to be written, at most
_CHUNK = 1000  # skipped rows appended to the manifest in one write


@dataclass
class BatchProgress:
    """A progress event: ``row`` was just recorded (``None`` for the first event)."""

    done: int
    total: int
    row: dict[str, Any] | None = None


@dataclass
class BatchReport:
    """What a batch-cam run did (this shard only)."""

    output_dir: Path
    manifest: Path
    manifest_csv: Path
    gallery: Path
    settings_file: Path
    model: str
    device: str
    total: int
    ok: int
    skipped: int
    failed: int
    elapsed_s: float
    images_per_s: float
    shard: tuple[int, int] | None = None

    @property
    def exit_code(self) -> int:
        """0 when every input is done, 3 when some failed."""
        return EXIT_PARTIAL if self.failed else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary, with per-status counts and the paths written."""
        data = asdict(self)
        for key in ("output_dir", "manifest", "manifest_csv", "gallery", "settings_file"):
            data[key] = str(data[key])
        data["shard"] = f"{self.shard[0]}/{self.shard[1]}" if self.shard else None
        data["processed"] = self.ok
        data["counts"] = {"ok": self.ok, "skipped": self.skipped, "error": self.failed}
        data["exit_code"] = self.exit_code
        return data


@dataclass
class _Decoded:
    """One image ready to explain: where it came from, its pixels and its model input."""

    index: int
    original: np.ndarray  # (H, W, 3) uint8, oriented
    tensor: np.ndarray  # (3, h, w) float32, normalised

    @property
    def nbytes(self) -> int:
        return int(self.original.nbytes + self.tensor.nbytes)


Sample = tuple[int, np.ndarray | None, np.ndarray | None, str | None]


def _reason(message: str, path: str) -> str:
    """An error message without the leading ``path: `` (the manifest row has the path)."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


class _ImageFiles(Dataset[Sample]):
    """Reads image ``i`` in a DataLoader worker: ``(i, original, model input, error)``."""

    def __init__(
        self,
        paths: list[str],
        short_side: int,
        mean: Sequence[float],
        std: Sequence[float],
        max_pixels: int | None,
    ) -> None:
        self.paths = paths
        self.short_side = short_side
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Sample:
        path = self.paths[index]
        try:
            image = load_image(Path(path), self.max_pixels)
            tensor = preprocess(image, self.short_side, self.mean, self.std).numpy()
            return index, np.array(image, dtype=np.uint8), tensor, None
        except CamtoolError as exc:
            return index, None, None, _reason(exc.message, path)
        except Exception as exc:  # a decoder bug or MemoryError: this file fails, not the run
            return index, None, None, f"cannot read image ({type(exc).__name__}: {exc})"


def _one_thread() -> None:
    """Writer threads run torch ops (upsampling) single-threaded, leaving the cores to the model.

    With the OpenMP backend the thread count is per calling thread, so the main thread keeps
    its own; with any other backend the setting would be global, so it is left alone.
    """
    if "parallel backend: OpenMP" in torch.__config__.parallel_info():
        torch.set_num_threads(1)


def _as_is(sample: Any) -> Any:
    """DataLoader ``collate_fn`` that leaves samples alone (numpy arrays are not converted)."""
    return sample


def _row(item: InputItem, status: str, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"path": item.path, "output": None, "status": status, "error": None}
    row.update(
        dict.fromkeys(("pred_idx", "pred_name", "prob", "class_idx", "peak", "box", "outputs"))
    )
    row.update(fields)
    return row


def _clean_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def _gallery(directory: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``index.html`` from the manifest rows a gallery can show."""
    from camtool.batch.gallery import STATUSES, write_gallery

    shown = [
        {key: _clean_text(value) for key, value in row.items()}
        for row in rows
        if row.get("status") in STATUSES
    ]
    write_gallery(directory, shown, title=f"camtool batch-cam: {directory.name or directory}")


class _Run:
    """One batch run's state: the pipeline's buffers, the counts, the manifest."""

    def __init__(
        self,
        runner: Runner,
        options: CamOptions,
        out_dir: Path,
        *,
        batch_size: int,
        write_threads: int,
        on_progress: Callable[[BatchProgress], None] | None,
        total: int,
    ) -> None:
        self.runner = runner
        self.info = runner.info
        self.options = options
        self.out_dir = out_dir
        self.batch_size = batch_size
        self.write_threads = write_threads
        self.on_progress = on_progress
        self.total = total
        self.manifest = ManifestWriter(out_dir)
        self.counts = {"ok": 0, "skipped": 0, "error": 0}
        self.buckets: dict[tuple[int, ...], list[_Decoded]] = {}
        self.waiting = 0
        self.waiting_bytes = 0
        self.writes: deque[tuple[Future[dict[str, Any]], int]] = deque()
        self.writing_bytes = 0
        self.max_writes = batch_size + 2 * write_threads
        self.pool: ThreadPoolExecutor | None = None
        self.items: list[InputItem] = []

    # -- recording --------------------------------------------------------------------------

    def record(self, *rows: dict[str, Any]) -> None:
        """Append rows to the manifest (in one write) and count them."""
        self.manifest.append_many(rows)
        for row in rows:
            self.counts[row["status"]] += 1
            if self.on_progress is not None:
                self.on_progress(BatchProgress(sum(self.counts.values()), self.total, row))

    # -- stage 2: batches -------------------------------------------------------------------

    def add(self, decoded: _Decoded) -> None:
        """Queue a decoded image; run a batch when one is full or too much is waiting."""
        key = tuple(decoded.tensor.shape[1:])
        bucket = self.buckets.setdefault(key, [])
        bucket.append(decoded)
        self.waiting += 1
        self.waiting_bytes += decoded.nbytes
        if len(bucket) >= self.batch_size:
            self.run_bucket(key)
        while self.buckets and (
            self.waiting > _WAIT_BATCHES * self.batch_size or self.waiting_bytes > _WAIT_BYTES
        ):
            self.run_bucket(max(self.buckets, key=lambda k: len(self.buckets[k])))

    def run_bucket(self, key: tuple[int, ...]) -> None:
        """Explain the images waiting in one bucket and hand them to the writers."""
        entries = self.buckets.pop(key)
        self.waiting -= len(entries)
        self.waiting_bytes -= sum(e.nbytes for e in entries)
        images = torch.from_numpy(np.stack([e.tensor for e in entries]))
        options = self.options
        try:
            batch = explain_batch(self.runner, images, target=options.target, topk=options.topk)
        except torch.cuda.OutOfMemoryError:
            raise CamtoolError(
                "out of GPU memory; try a smaller --batch-size or --device cpu"
            ) from None
        except (RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            for entry in entries:
                self.record(_row(self.items[entry.index], "error", error=f"model failed: {first}"))
            return
        for row, entry in enumerate(entries):
            self.submit(entry, batch, row)

    def flush_buckets(self) -> None:
        """Run every bucket, oldest first."""
        for key in list(self.buckets):
            self.run_bucket(key)

    # -- stage 3: writes --------------------------------------------------------------------

    def submit(self, entry: _Decoded, batch: CAMBatch, row: int) -> None:
        """Write one image's maps in the pool; wait for the oldest writes if too many wait."""
        if self.pool is None:
            self.pool = ThreadPoolExecutor(
                self.write_threads, thread_name_prefix="camtool-write", initializer=_one_thread
            )
        item = self.items[entry.index]
        future = self.pool.submit(self.write_one, item, entry.original, batch, row)
        self.writes.append((future, entry.original.nbytes))
        self.writing_bytes += entry.original.nbytes
        self.collect(self.max_writes)

    def collect(self, limit: int) -> None:
        """Record finished writes in order, waiting while more than ``limit`` are pending."""
        rows = []
        while self.writes and (
            len(self.writes) > limit
            or self.writing_bytes > _WRITE_BYTES
            or self.writes[0][0].done()
        ):
            future, size = self.writes.popleft()
            self.writing_bytes -= size
            rows.append(future.result())
        self.record(*rows)

    def write_one(
        self, item: InputItem, original: np.ndarray, batch: CAMBatch, row: int
    ) -> dict[str, Any]:
        """Draw and write one image's maps; return its manifest row (never raises)."""
        found: dict[str, Any] = {}

        def locate(k: int, heat: np.ndarray) -> None:
            if k == 0:
                found["peak"] = list(peak(heat))
                box = box_from_map(heat, BOX_THRESHOLD)
                found["box"] = list(box.as_tuple()) if box.area() else None

        try:
            image = Image.fromarray(original)
            written = write_maps(
                image,
                batch,
                row,
                self.out_dir / item.base,
                self.info,
                self.options,
                on_heatmap=locate,
            )
        except OSError as exc:
            return _row(item, "error", error=f"cannot write outputs ({exc.strerror or exc})")
        except CamtoolError as exc:
            return _row(item, "error", error=exc.message)
        except Exception as exc:  # one image's failure must not end the run
            return _row(item, "error", error=f"cannot draw maps ({type(exc).__name__}: {exc})")
        probs = batch.probs[row]
        pred = int(probs.argmax())
        outputs = [p.relative_to(self.out_dir).as_posix() for p in written]
        return _row(
            item,
            "ok",
            output=outputs[0],
            pred_idx=pred,
            pred_name=self.info.class_names[pred],
            prob=round(float(probs[pred]), 6),
            class_idx=int(batch.class_idx[row, 0]),
            peak=found.get("peak"),
            box=found.get("box"),
            outputs=outputs,
        )

    def stop_writes(self, cancel: bool) -> None:
        """Finish (or, after an interrupt, cancel the unstarted) writes and record them."""
        if cancel:
            self.writes = deque((f, n) for f, n in self.writes if not f.cancel())
            self.writing_bytes = sum(n for _f, n in self.writes)
        self.collect(0)
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None

    # -- the whole pipeline -----------------------------------------------------------------

    def pipeline(self, samples: Iterator[Sample]) -> None:
        """Decode -> explain -> write, until every sample is done."""
        while True:
            try:
                index, original, tensor, error = next(samples)
            except StopIteration:
                break
            except RuntimeError as exc:  # a worker died (e.g. a decoder crashed)
                raise CamtoolError(f"reading images failed: {exc}") from None
            if error is not None or original is None or tensor is None:
                self.record(_row(self.items[index], "error", error=error or "cannot read image"))
            else:
                self.add(_Decoded(index, original, tensor))
            self.collect(self.max_writes)
        self.flush_buckets()


def _loader(dataset: _ImageFiles, workers: int) -> DataLoader[Sample]:
    workers = max(0, min(workers, len(dataset)))
    return DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        collate_fn=_as_is,
        prefetch_factor=2 if workers else None,
    )


def _close(samples: Iterator[Sample] | None) -> None:
    """Stop a DataLoader iterator's worker processes now (not whenever it is collected)."""
    shutdown = getattr(samples, "_shutdown_workers", None)
    if callable(shutdown):
        shutdown()


def _is_done(previous: Mapping[str, Any], expected: list[Path], out: Path) -> bool:
    """Whether a previous manifest row says the input is done and its outputs are all there."""
    if previous.get("status") not in ("ok", "skipped"):
        return False
    if previous.get("output") != expected[0].relative_to(out).as_posix():
        return False
    return all(path.is_file() for path in expected)


def _map_count(options: CamOptions, num_classes: int) -> int:
    return 1 if options.target is not None else min(options.topk, num_classes)


def run_batch(
    inputs: Sequence[str | os.PathLike[str]],
    settings: Settings,
    *,
    model_path: Path | None = None,
    class_spec: str | None = None,
    stdin: Iterable[str | bytes] | None = None,
    fmt: str = "jpg",
    figure: bool = False,
    save_array: bool = False,
    overwrite: bool = False,
    shard: tuple[int, int] | None = None,
    write_threads: int | None = None,
    runner: Runner | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
) -> BatchReport:
    """Explain every image under ``inputs`` and write overlays, a manifest and a gallery.

    Settings used: ``cam.output_dir``, ``cam.topk``, ``cam.alpha``, ``cam.colormap``,
    ``cam.max_pixels``, ``training.batch_size``, ``training.workers`` (decoding processes),
    ``training.device``, ``training.amp``, ``model.arch`` and ``dataset.img_size`` (for models
    that do not record them).

    Args:
        inputs: folders (walked recursively), image files, or ``-`` for paths on ``stdin``.
        settings: the resolved settings.
        model_path: checkpoint or ``.onnx`` file; ``None`` for torchvision's ImageNet ResNet.
        class_spec: the class to explain (index or name); ``None`` for the predicted class.
        stdin: lines to read when ``-`` is among ``inputs``.
        fmt: overlay format, ``jpg`` or ``png``.
        figure: write the three-panel figure (PNG) instead of the bare overlay.
        save_array: also write ``.npz`` arrays.
        overwrite: redo inputs that are already done.
        shard: ``(I, N)`` to process only shard ``I`` of ``N``.
        write_threads: threads drawing and writing maps (default: up to 4, one per CPU).
        runner: an already opened model (then ``model_path`` and the device are not used).
        on_progress: called after each manifest row (and once at the start).

    Returns:
        The summary; its ``exit_code`` is 3 if some inputs failed.

    Raises:
        CamtoolError: nothing could run (no inputs, bad model or flags), or the run was
            interrupted (exit code 130, after saving the manifest).
    """
    started = time.perf_counter()
    fmt = {"jpeg": "jpg"}.get(str(fmt).lower(), str(fmt).lower())
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose jpg or png")
    out_dir = Path(settings.cam.output_dir)
    items = discover_inputs(inputs, out_dir, stdin=stdin)
    if not items:
        named = ", ".join(os.fspath(i) for i in inputs) or "(nothing)"
        raise CamtoolError(
            f"no images found in {named} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    assign_outputs(items)
    if shard is not None:
        items = select_shard(items, *shard)

    if runner is None:
        runner = runner_from_settings(model_path, settings)
    info = runner.info
    target = resolve_class(class_spec, info.class_names) if class_spec is not None else None
    options = CamOptions(
        target=target,
        topk=settings.cam.topk,
        alpha=settings.cam.alpha,
        colormap=settings.cam.colormap,
        figure=figure,
        save_array=save_array,
        fmt=fmt,
        max_pixels=settings.cam.max_pixels,
        upsample=settings.cam.upsample.value,
    )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        settings_file = write_settings(out_dir, settings)
    except OSError as exc:
        raise CamtoolError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None

    threads = write_threads or max(1, min(4, os.cpu_count() or 1))
    run = _Run(
        runner,
        options,
        out_dir,
        batch_size=settings.training.batch_size,
        write_threads=threads,
        on_progress=on_progress,
        total=len(items),
    )
    previous = {} if overwrite else latest_rows(out_dir / MANIFEST_JSONL)
    maps = _map_count(options, len(info.class_names))
    interrupted = False
    samples: Iterator[Sample] | None = None
    pipeline_started = time.perf_counter()
    try:
        if on_progress is not None:
            on_progress(BatchProgress(0, len(items)))
        known: list[dict[str, Any]] = []  # rows known without reading: written in chunks
        for item in items:
            prev = previous.get(item.path)
            if item.error is not None:
                known.append(_row(item, "error", error=item.error))
            elif prev is not None and _is_done(
                prev, map_paths(out_dir / item.base, options, maps), out_dir
            ):
                known.append({**prev, "status": "skipped"})
            else:
                run.items.append(item)
            if len(known) >= _CHUNK:
                run.record(*known)
                known.clear()
        run.record(*known)
        previous.clear()
        if run.items:
            dataset = _ImageFiles(
                [item.path for item in run.items],
                info.img_size,
                info.mean,
                info.std,
                options.max_pixels,
            )
            samples = iter(_loader(dataset, settings.training.workers))
            run.pipeline(samples)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        try:
            _close(samples)
            samples = None
            run.stop_writes(cancel=interrupted)
        finally:
            finalize(out_dir, _gallery)
    if interrupted:
        done = sum(run.counts.values())
        raise CamtoolError(
            f"interrupted after {done} of {len(items)} inputs; the manifest is saved in "
            f"{out_dir}, run the same command again to finish",
            exit_code=EXIT_INTERRUPTED,
        )
    ended = time.perf_counter()
    pipeline_s = max(ended - pipeline_started, 1e-9)
    return BatchReport(
        output_dir=out_dir,
        manifest=out_dir / MANIFEST_JSONL,
        manifest_csv=out_dir / MANIFEST_CSV,
        gallery=out_dir / "index.html",
        settings_file=settings_file,
        model=info.source,
        device=str(getattr(runner, "device", "")),
        total=len(items),
        ok=run.counts["ok"],
        skipped=run.counts["skipped"],
        failed=run.counts["error"],
        elapsed_s=round(ended - started, 3),
        images_per_s=round(run.counts["ok"] / pipeline_s, 2),
        shard=shard,
    )
