"""Measuring a model: classification, CAM localization, faithfulness, their metrics and figures.

Modules:

* ``classification``
* ``data``
* ``evaluate``
* ``faithfulness``
* ``figures``
* ``localization``
* ``localization_metrics``
* ``metrics``
* ``wsol``

The names below are importable from the package itself; each is loaded from its module on
first use, so importing the package costs nothing.
"""

from __future__ import annotations

from camtool._lazy import lazy_exports

_WHERE: dict[str, str] = {
    "CAM_THRESHOLD": "localization",
    "CROP_NOTE": "data",
    "DEFAULT_CAM_THRESHOLDS": "localization_metrics",
    "DEFAULT_FAITHFULNESS_IMAGES": "evaluate",
    "DEFAULT_IOU_THRESHOLDS": "localization_metrics",
    "DEFAULT_OUTPUT_DIR": "evaluate",
    "EvalOptions": "evaluate",
    "EvalProgress": "data",
    "EvalReport": "evaluate",
    "FAITHFULNESS_STEPS": "evaluate",
    "IndexedDataset": "data",
    "LOC_IOU": "localization",
    "LocItem": "localization",
    "LocalizationAccumulator": "localization_metrics",
    "LocalizationResults": "localization_metrics",
    "MAX_MISTAKES": "classification",
    "METRIC_GROUPS": "evaluate",
    "ModelFn": "metrics",
    "PROTOCOLS": "evaluate",
    "ProgressFn": "metrics",
    "SPLITS": "data",
    "WSOL_CAM_THRESHOLDS": "wsol",
    "average_drop_increase": "metrics",
    "centre_box_baseline": "localization_metrics",
    "check_classes": "data",
    "confusion_matrix": "metrics",
    "confusion_png": "evaluate",
    "data_dir_candidates": "evaluate",
    "deletion_insertion_auc": "metrics",
    "evaluate_classification": "classification",
    "evaluate_faithfulness": "evaluate",
    "evaluate_localization": "evaluate",
    "localization_dict": "localization",
    "localization_items": "localization",
    "make_loader": "data",
    "merge_skipped": "data",
    "mistakes_png": "figures",
    "oom_error": "data",
    "parse_metric_groups": "evaluate",
    "per_class_prf": "metrics",
    "quantize": "wsol",
    "run_eval": "evaluate",
    "run_localization": "localization",
    "split_dataset": "data",
    "topk_correct": "metrics",
    "wsol_boxes": "wsol",
    "wsol_iou": "wsol",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)
