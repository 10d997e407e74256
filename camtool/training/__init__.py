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
"""
