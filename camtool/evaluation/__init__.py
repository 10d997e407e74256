"""Measuring a model: classification, CAM localization, faithfulness, their metrics and figures.

Modules:

* ``evaluate`` -- ``camtool eval``: runs the passes below and writes the results
* ``data`` -- the evaluated split, its fit to the model, the one batch loop
* ``classification`` -- loss, top-1/top-5, per-class precision/recall/F1, mistakes
* ``metrics`` -- the classification and faithfulness formulas on torch batches
* ``localization``, ``localization_metrics`` -- the CAM paper's top-1 localization and
  MaxBoxAccV2 on uncropped inputs
* ``wsol`` -- MaxBoxAccV2 as the wsolevaluation reference computes it (Choe et al., 2020)
* ``faithfulness`` -- deletion / insertion AUC, Average Drop / Increase
* ``figures`` -- confusion matrix and confident-mistakes grid
"""
