"""Training logs: ``metrics.jsonl`` (one JSON line per epoch) and the ``curves.png`` figure."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from camtool.fsutil import atomic_write_text
from camtool.textio import to_json

__all__ = ["curves_png", "write_metrics"]


def write_metrics(path: Path, history: Sequence[Mapping[str, Any]]) -> None:
    """Write ``history`` to ``path`` atomically, one JSON object per line (``metrics.jsonl``)."""
    lines = "".join(to_json(dict(h), indent=None) + "\n" for h in history)
    atomic_write_text(path, lines)


def curves_png(history: Sequence[Mapping[str, Any]]) -> bytes:
    """Loss and accuracy per epoch, train and held-out, as PNG bytes (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [int(h["epoch"]) for h in history]
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
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
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
