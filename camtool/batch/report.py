"""What a ``camtool batch-cam`` run did: the summary it prints and its ``--json`` document."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from camtool.errors import EXIT_OK, EXIT_PARTIAL

__all__ = ["BatchReport", "top1_of"]


@dataclass
class BatchReport:
    """What a batch-cam run did (this shard only); ``ok + skipped + failed == total``.

    Attributes:
        total: inputs of this run.
        ok: inputs whose maps this run wrote.
        skipped: inputs already done by an earlier run, left as they were.
        failed: inputs that failed in this run (an ``error`` row each).
        elapsed_s: wall time of the whole run, seconds.
        images_per_s: ``ok`` per second of the reading-explaining-writing stage.
        labelled: inputs of the manifest (every shard and earlier run) with maps and a known
            true class (a folder above them named like a class).
        top1: the fraction of those whose predicted class is the true one; ``None`` when no
            input is labelled.
    """

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
        """The ``--json`` document (schema in the README): the fields in order, paths as text,
        then the exit code."""
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        doc.update(
            elapsed_s=round(self.elapsed_s, 1),
            images_per_s=float(f"{self.images_per_s:.3g}"),
            top1=round(self.top1, 4) if self.top1 is not None else None,
            shard=f"{self.shard[0]}/{self.shard[1]}" if self.shard else None,
            exit_code=self.exit_code,
        )
        return {key: str(v) if isinstance(v, Path) else v for key, v in doc.items()}


def top1_of(rows: Sequence[Mapping[str, Any]]) -> tuple[int, float | None]:
    """How many ``ok`` rows have a true class, and the fraction predicted right (or ``None``)."""
    labelled = [r for r in rows if r.get("status") == "ok" and r.get("true_idx") is not None]
    if not labelled:
        return 0, None
    right = sum(r.get("pred_idx") == r["true_idx"] for r in labelled)
    return len(labelled), right / len(labelled)
