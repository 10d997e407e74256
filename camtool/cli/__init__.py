"""camtool's command line: each module declares one command's options and calls the core once."""

from __future__ import annotations

import os

from camtool.cli import batch_cam, cam, config, demo, download, eval, export, train  # noqa: F401  (registers the commands)
from camtool.cli._app import app

__all__ = ["OPENMP_DEFAULTS", "app", "main"]

#: Set for the OpenMP runtime by :func:`main` where the environment does not say otherwise.
OPENMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def main() -> None:
    """Entry point of the ``camtool`` console script.

    Waiting OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE`` unless set):
    the model's threads share the cores with the decoding worker processes and the writer
    threads, and spinning waiters starve them: on a busy 2-core machine batch-cam ran 1.4x
    faster with it on photos of one size and 5.6x on photos of mixed sizes, where runs without it
    stalled for tens of seconds (``benchmarks/batch_cam.py``). It takes effect because the
    commands import torch (and with it the OpenMP runtime, which reads it once) only when run.
    """
    for key, value in OPENMP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    app()
