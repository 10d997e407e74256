"""``camtool batch-cam``: maps for whole folders, streamed with flat memory.

Three stages overlap: worker processes decode (:func:`~camtool.batch.inputs.read_images`), the main
thread batches inputs of one size through the model, writer threads draw the maps and yield manifest
rows in order (:class:`~camtool.batch.manifest.MapWriter`). Torch is never imported for an ONNX
model. Inputs whose row says ``ok`` and whose outputs exist are skipped, so a rerun finishes an
interrupted run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from camtool.batch.gallery import INDEX_NAME, write_gallery
from camtool.batch.inputs import Decoded, InputItem, Reader, find_inputs, read_images
from camtool.batch.manifest import (
    MANIFEST_CSV,
    MANIFEST_JSONL,
    STATUSES,
    ManifestWriter,
    MapWriter,
    finalize,
    latest_rows,
    manifest_row,
)
from camtool.choices import OutputFormat
from camtool.core.maps import explain_batch, resolve_class
from camtool.core.runner import Runner
from camtool.errors import EXIT_OK, EXIT_PARTIAL, CamtoolError, ConfigError, interrupt_exit_code
from camtool.explain.files import CamOptions, map_paths, refuse_out_of_gpu_memory
from camtool.explain.job import prepare_output_dir
from camtool.paths import require_writable_dir
from camtool.runtime import runner_from_settings
from camtool.settings import Settings
from camtool.textio import unicode_text

__all__ = ["BatchReport", "OnProgress", "run_batch"]

_WAIT_BATCHES = 4  # images waiting for a batch, in batch sizes
_WAIT_BYTES = 256 * 2**20  # decoded images waiting for a batch, at most
_CHUNK = 1000  # error rows known before reading, appended to the manifest in one write

OnProgress = Callable[[int, int, Mapping[str, Any] | None], None]
"""``on_progress(done, total, row)``: ``row`` was just recorded (``None`` at the start and for
inputs skipped as already done)."""


@dataclass
class BatchReport:
    """What a batch-cam run did (this shard only): of ``total`` inputs, ``ok`` got their maps,
    ``skipped`` were done earlier, ``failed`` have an ``error`` row. ``elapsed_s``: wall seconds;
    ``images_per_s``: ``ok`` per second of the read-explain-write stage. ``labelled``: inputs of
    the whole manifest with maps and a true class; ``top1``: the fraction of those predicted right
    (``None`` when none is labelled)."""

    total: int
    ok: int
    skipped: int
    failed: int
    elapsed_s: float
    images_per_s: float
    labelled: int
    top1: float | None
    shard: tuple[int, int] | None
    model: str
    device: str
    output_dir: Path
    manifest: Path
    manifest_csv: Path
    gallery: Path
    settings_file: Path

    @property
    def exit_code(self) -> int:
        """0 when every input is done, 3 when some failed."""
        return EXIT_PARTIAL if self.failed else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document (README): the fields in order, paths as text, the exit code."""
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        doc.update(
            elapsed_s=round(self.elapsed_s, 1),
            images_per_s=float(f"{self.images_per_s:.3g}"),
            top1=round(self.top1, 4) if self.top1 is not None else None,
            shard=f"{self.shard[0]}/{self.shard[1]}" if self.shard else None,
            exit_code=self.exit_code,
        )
        return {key: str(v) if isinstance(v, Path) else v for key, v in doc.items()}


def _gallery(directory: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    shown = [row for row in rows if row.get("status") in STATUSES]
    write_gallery(directory, shown, title=f"camtool batch-cam: {directory.name or directory}")


class _Run:
    """One run's explaining stage: size buckets, forward passes, counts, the manifest."""

    def __init__(
        self, runner: Runner, options: CamOptions, out_dir: Path, batch_size: int, total: int
    ) -> None:
        self.runner = runner
        self.options = options
        threads = max(1, min(4, os.cpu_count() or 1))
        self.writer = MapWriter(out_dir, runner.info, options, threads, batch_size + 2 * threads)
        self.batch_size = batch_size
        self.on_progress: OnProgress = lambda _done, _total, _row: None
        self.total = total
        self.manifest = ManifestWriter(out_dir)
        self.counts = {"ok": 0, "skipped": 0, "error": 0}
        self.buckets: dict[tuple[int, ...], list[tuple[InputItem, Decoded]]] = {}
        self.waiting = 0
        self.waiting_bytes = 0
        self.items: list[InputItem] = []

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def record(self, rows: Sequence[dict[str, Any]]) -> None:
        self.manifest.append_many(rows)
        for row in rows:
            self.counts[row["status"]] += 1
            self.on_progress(self.done, self.total, row)

    def add(self, item: InputItem, decoded: Decoded) -> None:
        """Queue a decoded image; run a batch when one is full or too much is waiting."""
        key = decoded.tensor.shape
        bucket = self.buckets.setdefault(key, [])
        bucket.append((item, decoded))
        self.waiting += 1
        self.waiting_bytes += decoded.nbytes
        if len(bucket) >= self.batch_size:
            self.run_bucket(key)
        while self.buckets and (
            self.waiting > _WAIT_BATCHES * self.batch_size or self.waiting_bytes > _WAIT_BYTES
        ):
            self.run_bucket(max(self.buckets, key=lambda k: len(self.buckets[k])))

    def run_bucket(self, key: tuple[int, ...]) -> None:
        entries = self.buckets.pop(key)
        self.waiting -= len(entries)
        self.waiting_bytes -= sum(decoded.nbytes for _item, decoded in entries)
        images = np.stack([decoded.tensor for _item, decoded in entries])
        try:
            batch = explain_batch(
                self.runner, images, target=self.options.target, topk=self.options.topk
            )
        except (RuntimeError, ValueError) as exc:
            refuse_out_of_gpu_memory(exc, "a smaller --batch-size or --device cpu")
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            reason = f"model failed: {first}"
            self.record([manifest_row(item.path, "error", reason) for item, _d in entries])
            return
        for row, (item, decoded) in enumerate(entries):
            self.record(self.writer.submit(item, decoded.original, batch, row))

    def pipeline(self, workers: int) -> None:
        info = self.writer.info
        reader = Reader(
            info.img_size, info.mean, info.std, self.options.max_pixels, info.output_stride
        )
        decoded = read_images(reader, [item.path for item in self.items], workers)
        try:
            for item, result in zip(self.items, decoded, strict=True):
                if isinstance(result, str):
                    self.record([manifest_row(item.path, "error", result)])
                else:
                    self.add(item, result)
                self.record(self.writer.collect(self.writer.max_pending))
        finally:
            decoded.close()  # stop the workers now, also when interrupted
        for key in list(self.buckets):
            self.run_bucket(key)

    def plan(self, items: list[InputItem], overwrite: bool) -> None:
        """Count as skipped the inputs whose row says ``ok`` and whose files all exist, record
        those known to fail, queue the others."""
        out_dir, options = self.writer.out_dir, self.options
        rows = latest_rows(out_dir / MANIFEST_JSONL).values() if not overwrite else []
        done = {row["output"] for row in rows if row.get("status") == "ok" and row.get("output")}
        maps = options.map_count(len(self.writer.info.class_names))
        known: list[dict[str, Any]] = []
        skipped = 0
        for item in items:
            expected = map_paths(out_dir / item.base, options, maps)
            output = unicode_text(expected[0].relative_to(out_dir).as_posix())  # as the row has it
            if item.error is not None:
                known.append(manifest_row(item.path, "error", item.error))
            elif output in done and all(path.is_file() for path in expected):
                skipped += 1
            else:
                self.items.append(item)
            if len(known) >= _CHUNK:
                self.record(known)
                known.clear()
        self.record(known)
        self.counts["skipped"] += skipped  # their manifest rows stay as they are
        if skipped:
            self.on_progress(self.done, self.total, None)

    def execute(
        self, items: list[InputItem], workers: int, overwrite: bool
    ) -> list[dict[str, Any]]:
        """Settle every input, always saving the manifest and gallery; return the final rows.
        When interrupted, cancel the writes not started and raise a ``CamtoolError``."""
        stopped_by: KeyboardInterrupt | None = None
        try:
            self.on_progress(0, self.total, None)
            self.plan(items, overwrite)
            if self.items:
                self.pipeline(workers)
        except KeyboardInterrupt as exc:
            stopped_by = exc
        finally:
            try:
                self.record(self.writer.stop(cancel=stopped_by is not None))
            finally:
                rows = finalize(self.writer.out_dir, _gallery)
        if stopped_by is not None:
            raise CamtoolError(
                f"interrupted after {self.done} of {self.total} inputs; the manifest is saved in "
                f"{self.writer.out_dir}, run the same command again to finish",
                exit_code=interrupt_exit_code(stopped_by),
            )
        return rows


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
    runner: Runner | None = None,
    on_progress: OnProgress | None = None,
) -> BatchReport:
    """Explain every image under ``inputs`` and write overlays, a manifest and a gallery.

    Settings used: ``[cam]``, ``[runtime]``, and ``model.arch`` and ``dataset.img_size`` for
    models that do not record them. ``inputs``: folders (walked recursively), image files, or
    ``-`` for the paths on ``stdin``. ``model_path``: checkpoint or ``.onnx`` (``None``:
    torchvision's ImageNet ResNet), unless ``runner`` is given. ``class_spec``: the class to
    explain (index or name; ``None``: the predicted one). ``fmt``: ``jpg`` or ``png`` overlays;
    ``figure``: the three-panel PNG instead; ``save_array``: also ``.npz``. ``overwrite`` redoes
    inputs already done; ``shard`` ``(I, N)`` takes shard ``I`` of ``N``.

    Raises:
        CamtoolError: nothing could run (no inputs, bad model or flags), or the run was
            interrupted (exit code 130, after saving the manifest).
    """
    started = time.perf_counter()
    fmt = {"jpeg": "jpg"}.get(str(fmt).lower(), str(fmt).lower())
    if fmt not in {f.value for f in OutputFormat}:
        raise ConfigError(f"unknown format {fmt!r}; choose jpg or png")
    options = CamOptions.from_settings(settings, figure=figure, save_array=save_array, fmt=fmt)
    out_dir = Path(settings.cam.output_dir)
    items = find_inputs(inputs, out_dir, stdin=stdin, shard=shard)
    require_writable_dir(out_dir)
    if runner is None:
        runner = runner_from_settings(model_path, settings)
    info = runner.info
    if class_spec is not None:
        options = replace(options, target=resolve_class(class_spec, info.class_names))
    settings_file = prepare_output_dir(out_dir, settings, recursive=True)
    run = _Run(runner, options, out_dir, settings.runtime.batch_size, len(items))
    run.on_progress = on_progress or run.on_progress
    pipeline_started = time.perf_counter()
    rows = run.execute(items, settings.runtime.workers, overwrite)
    ended = time.perf_counter()
    labelled = [r for r in rows if r.get("status") == "ok" and r.get("true_idx") is not None]
    right = sum(r.get("pred_idx") == r["true_idx"] for r in labelled)
    return BatchReport(
        output_dir=out_dir,
        manifest=out_dir / MANIFEST_JSONL,
        manifest_csv=out_dir / MANIFEST_CSV,
        gallery=out_dir / INDEX_NAME,
        settings_file=settings_file,
        model=info.source,
        device=str(getattr(runner, "device", "")),
        total=run.total,
        ok=run.counts["ok"],
        skipped=run.counts["skipped"],
        failed=run.counts["error"],
        elapsed_s=ended - started,
        images_per_s=run.counts["ok"] / max(ended - pipeline_started, 1e-9),
        labelled=len(labelled),
        top1=right / len(labelled) if labelled else None,
        shard=shard,
    )
