"""batch-cam's last stage: a small thread pool draws and writes each image's maps.

Each image's maps are upsampled to its own size and drawn
(:func:`camtool.explain.files.write_maps`), the first map's peak and box are found
(:mod:`camtool.core.localize`), and the result becomes one manifest row. Rows come back in the
order the images were submitted. At most a bounded number of images (and of decoded bytes)
wait to be written, so memory stays flat.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from camtool.batch.inputs import InputItem
from camtool.batch.manifest import manifest_row
from camtool.core.localize import box_from_map, peak
from camtool.core.maps import CAMBatch
from camtool.core.runner import ModelInfo
from camtool.errors import CamtoolError
from camtool.explain.files import CamOptions, write_maps

__all__ = ["BOX_THRESHOLD", "PROB_DIGITS", "MapWriter"]

#: Relative threshold of the box around the largest hot region (CAM paper: 20% of the max).
BOX_THRESHOLD = 0.2
#: Decimals kept of a probability in the manifest (0.01 percentage point).
PROB_DIGITS = 4
_WRITE_BYTES = 256 * 2**20  # decoded images waiting to be written, at most

Rows = list[dict[str, Any]]


def _one_thread() -> None:
    """Writer threads run torch ops (upsampling) single-threaded, leaving the cores to the model.

    With the OpenMP backend the thread count is per calling thread, so the main thread keeps
    its own; with any other backend the setting would be global, so it is left alone.
    """
    if "parallel backend: OpenMP" in torch.__config__.parallel_info():
        torch.set_num_threads(1)


class MapWriter:
    """Writes images' maps in ``threads`` threads and hands back their manifest rows in order.

    Args:
        out_dir: the output folder (each input's ``base`` is relative to it).
        info: the model's description (class names).
        options: how maps are chosen and drawn.
        threads: writer threads.
        max_pending: images submitted but not yet handed back, at most.
    """

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
        """Queue image ``row`` of ``batch``; return the rows of the writes finished meanwhile.

        Waits for the oldest writes while more than ``max_pending`` images (or too many bytes)
        are pending.
        """
        if self.pool is None:
            self.pool = ThreadPoolExecutor(
                self.threads, thread_name_prefix="camtool-write", initializer=_one_thread
            )
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
        found: dict[str, Any] = {}

        def locate(k: int, heat: np.ndarray) -> None:
            if k == 0:
                top = peak(heat)  # None for a flat map: no peak, and no box either
                box = box_from_map(heat, BOX_THRESHOLD)
                found["peak"] = list(top) if top is not None else None
                found["box"] = list(box.as_tuple()) if top is not None and box.area() else None

        try:
            base = self.out_dir / item.base
            image = Image.fromarray(original)
            written = write_maps(
                image, batch, row, base, self.info, self.options, on_heatmap=locate
            )
        except OSError as exc:
            return manifest_row(item.path, "error", f"cannot write outputs ({exc.strerror or exc})")
        except CamtoolError as exc:
            return manifest_row(item.path, "error", exc.message)
        except Exception as exc:  # one image's failure must not end the run
            reason = f"cannot draw maps ({type(exc).__name__}: {exc})"
            return manifest_row(item.path, "error", reason)
        return self._ok_row(item, batch, row, written, found)

    def _ok_row(
        self,
        item: InputItem,
        batch: CAMBatch,
        row: int,
        written: list[Path],
        found: dict[str, Any],
    ) -> dict[str, Any]:
        probs = batch.probs[row]
        pred = int(probs.argmax())
        outputs = [p.relative_to(self.out_dir).as_posix() for p in written]
        return manifest_row(
            item.path,
            "ok",
            output=outputs[0],
            pred_idx=pred,
            pred_name=self.info.class_names[pred],
            prob=round(float(probs[pred]), PROB_DIGITS),
            class_idx=int(batch.class_idx[row, 0]),
            peak=found.get("peak"),
            box=found.get("box"),
            outputs=outputs,
        )
