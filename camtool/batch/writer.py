"""batch-cam's last stage: a small thread pool draws and writes each image's maps.

Each image's maps are upsampled to its own size and drawn
(:func:`camtool.explain.files.write_maps`), the first map's peak and box are found
(:func:`camtool.explain.files.peak_and_box`), and the result becomes one manifest row. Rows
come back in the order the images were submitted. At most a bounded number of images (and of
decoded bytes) wait to be written, so memory stays flat.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from camtool.batch.inputs import InputItem
from camtool.batch.manifest import manifest_row
from camtool.core.maps import CAMBatch
from camtool.core.runner import ModelInfo
from camtool.data.labels import true_class
from camtool.errors import CamtoolError
from camtool.explain.files import CamOptions, peak_and_box, write_maps

__all__ = ["PROB_DIGITS", "MapWriter"]

#: Decimals kept of a probability in the manifest (0.01 percentage point).
PROB_DIGITS = 4
_WRITE_BYTES = 256 * 2**20  # decoded images waiting to be written, at most

Rows = list[dict[str, Any]]


class MapWriter:
    """Writes images' maps in ``threads`` threads and hands back their manifest rows in order,
    holding at most ``max_pending`` images submitted but not yet handed back."""

    def __init__(
        self, out_dir: Path, info: ModelInfo, options: CamOptions, threads: int, max_pending: int
    ) -> None:
        self.out_dir = out_dir
        self.info = info
        self.options = options
        self.threads = threads
        self.max_pending = max_pending
        self.pending: deque[tuple[Future[dict[str, Any]], int]] = deque()
        self.pending_bytes = 0
        self.pool: ThreadPoolExecutor | None = None

    def submit(self, item: InputItem, original: np.ndarray, batch: CAMBatch, row: int) -> Rows:
        """Queue image ``row`` of ``batch``; return the rows of the writes finished meanwhile."""
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="camtool-write")
        future = self.pool.submit(self.write_one, item, original, batch, row)
        self.pending.append((future, original.nbytes))
        self.pending_bytes += original.nbytes
        return self.collect(self.max_pending)

    def collect(self, limit: int) -> Rows:
        """The rows of finished writes, in order, waiting while more than ``limit`` are pending."""
        rows = []
        while self.pending and (
            len(self.pending) > limit
            or self.pending_bytes > _WRITE_BYTES
            or self.pending[0][0].done()
        ):
            future, size = self.pending.popleft()
            self.pending_bytes -= size
            rows.append(future.result())
        return rows

    def stop(self, cancel: bool) -> Rows:
        """Finish (or, after an interrupt, cancel the unstarted) writes; return their rows."""
        if cancel:
            self.pending = deque((f, n) for f, n in self.pending if not f.cancel())
            self.pending_bytes = sum(n for _f, n in self.pending)
        rows = self.collect(0)
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
        return rows

    def write_one(
        self, item: InputItem, original: np.ndarray, batch: CAMBatch, row: int
    ) -> dict[str, Any]:
        """Draw and write one image's maps; return its manifest row (never raises)."""
        located: list[tuple[list[int] | None, list[int] | None]] = []

        def locate(k: int, heat: np.ndarray) -> None:
            if k == 0:
                located.append(peak_and_box(heat))

        image, base = Image.fromarray(original), self.out_dir / item.base
        names = self.info.class_names
        true_idx = true_class(item.path, names)
        try:
            info, options = self.info, self.options
            paths = write_maps(
                image, batch, row, base, info, options, on_heatmap=locate, true_idx=true_idx
            )
        except OSError as exc:
            return manifest_row(item.path, "error", f"cannot write outputs ({exc.strerror or exc})")
        except CamtoolError as exc:
            return manifest_row(item.path, "error", exc.message)
        except Exception as exc:  # one image's failure must not end the run
            reason = f"cannot draw maps ({type(exc).__name__}: {exc})"
            return manifest_row(item.path, "error", reason)
        probs = batch.probs[row]
        pred = int(probs.argmax())
        outputs = [p.relative_to(self.out_dir).as_posix() for p in paths]
        ((peak, box),) = located
        return manifest_row(
            item.path,
            "ok",
            output=outputs[0],
            pred_idx=pred,
            pred_name=names[pred],
            prob=round(float(probs[pred]), PROB_DIGITS),
            class_idx=int(batch.class_idx[row, 0]),
            true_idx=true_idx,
            true_name=None if true_idx is None else names[true_idx],
            peak=peak,
            box=box,
            outputs=outputs,
        )
