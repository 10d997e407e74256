"""Training a CAMNet: the loop, optimizers and schedules, distributed helpers, reproducibility,
logs.

Modules:

* ``distributed``
* ``logs``
* ``loop``
* ``reproducibility``
* ``types``

The names below are importable from the package itself; each is loaded from its module on
first use, so importing the package costs nothing.
"""

from __future__ import annotations

from camtool._lazy import lazy_exports

_WHERE: dict[str, str] = {
    "BEST_FILE": "loop",
    "BatchProgress": "loop",
    "CURVES_FILE": "loop",
    "DistContext": "distributed",
    "EpochMetrics": "loop",
    "EpochSampler": "reproducibility",
    "Evaluation": "loop",
    "LAST_FILE": "loop",
    "METRICS_FILE": "loop",
    "PLATEAU_FACTOR": "loop",
    "PLATEAU_PATIENCE": "loop",
    "SeededItems": "reproducibility",
    "SilentObserver": "loop",
    "TrainObserver": "loop",
    "TrainPlan": "loop",
    "TrainResult": "loop",
    "all_reduce": "distributed",
    "barrier": "distributed",
    "build_optimizer": "loop",
    "build_scheduler": "loop",
    "curves_png": "logs",
    "dist_from_env": "distributed",
    "epoch_file": "loop",
    "evaluate": "loop",
    "item_seed": "reproducibility",
    "process_group": "distributed",
    "rng_state": "reproducibility",
    "seed_everything": "reproducibility",
    "set_rng_state": "reproducibility",
    "train": "loop",
    "write_metrics": "logs",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)
