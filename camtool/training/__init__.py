"""Training a CAMNet: the loop, optimizers and schedules, distributed helpers, reproducibility,
logs.

Modules:

* ``build``: the loaders, model, optimizer and schedule of a run
* ``checkpoints``: the checkpoint folder's files, resuming
* ``distributed``: torchrun helpers
* ``evaluate``: the held-out pass
* ``logs``: metrics.jsonl, curves.png
* ``loop``: :func:`train`
* ``optim``: optimizers, schedules, mixed precision
* ``reproducibility``: seeded order and augmentation, random states
* ``types``: plans, progress, metrics, results

The names below are importable from the package itself; each is loaded from its module on
first use, so importing the package costs nothing.
"""

from __future__ import annotations

from camtool._lazy import lazy_exports

_WHERE: dict[str, str] = {
    "BEST_FILE": "checkpoints",
    "BatchProgress": "types",
    "CURVES_FILE": "checkpoints",
    "DistContext": "distributed",
    "EPOCH_GLOB": "checkpoints",
    "EpochMetrics": "types",
    "EpochSampler": "reproducibility",
    "Evaluation": "evaluate",
    "LAST_FILE": "checkpoints",
    "LoopState": "checkpoints",
    "METRICS_FILE": "checkpoints",
    "PLATEAU_FACTOR": "optim",
    "PLATEAU_PATIENCE": "optim",
    "SeededItems": "reproducibility",
    "SilentObserver": "types",
    "TrainData": "build",
    "TrainObserver": "types",
    "TrainParts": "build",
    "TrainPlan": "types",
    "TrainResult": "types",
    "all_reduce": "distributed",
    "amp_dtype": "optim",
    "autocast": "optim",
    "barrier": "distributed",
    "build_data": "build",
    "build_optimizer": "optim",
    "build_parts": "build",
    "build_scheduler": "optim",
    "curves_png": "logs",
    "dist_from_env": "distributed",
    "epoch_file": "checkpoints",
    "eval_sums": "evaluate",
    "evaluate": "evaluate",
    "item_seed": "reproducibility",
    "load_for_resume": "checkpoints",
    "precision_name": "optim",
    "prepare_fresh_dir": "checkpoints",
    "process_group": "distributed",
    "restore_training": "checkpoints",
    "resume_path": "checkpoints",
    "resume_settings": "checkpoints",
    "rng_state": "reproducibility",
    "seed_everything": "reproducibility",
    "set_rng_state": "reproducibility",
    "step_scheduler": "optim",
    "stored_settings": "checkpoints",
    "to_device": "optim",
    "train": "loop",
    "training_state": "checkpoints",
    "write_metrics": "logs",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)
