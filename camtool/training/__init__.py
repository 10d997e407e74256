"""Training a CAMNet: :func:`camtool.training.loop.train` and what it is built from (the modules
are listed in the README's package map)."""
