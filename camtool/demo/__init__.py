"""The offline demo: generated shapes, a model trained from scratch, maps and their scores.

Modules:

* ``pipeline`` -- ``camtool demo``: data, training, evaluation and maps in one run
"""
