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

    Waiting OpenMP threads sleep (``OMP_WAIT_POLICY=PASSIVE`` unless set) instead of starving the
    decoding and writer threads: batch-cam ran 1.4x to 5.6x faster on a busy 2-core machine
    (``benchmarks/batch_cam.py``). The OpenMP runtime reads it once, when a command imports torch.
    """
    for key, value in OPENMP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    app()
