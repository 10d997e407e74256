"""The CAM network and everything that turns images into maps.

archs (which torchvision models camtool builds, which it refuses and why), heads (taking each
family apart: trunk, linear layer, output stride), model (CAMNet: trunk, GAP, one linear layer;
the invariant gate),
checkpoint (saving and safe loading), maps (class choice, map gathering, upsampling), localize
(peaks and boxes from maps), runners behind one interface (runner: the protocol; torch_runner,
onnx_runner; loading: open what ``--model`` names), device selection and ImageNet constants.

Modules:

* ``archs``
* ``checkpoint``
* ``device``
* ``heads``
* ``imagenet``
* ``loading``
* ``localize``
* ``maps``
* ``model``
* ``onnx_runner``
* ``receptive``
* ``runner``
* ``torch_runner``
* ``upsample``
* ``weights``

The names below are importable from the package itself; each is loaded from its module on
first use, so importing the package costs nothing.
"""

from __future__ import annotations

from camtool._lazy import lazy_exports

_WHERE: dict[str, str] = {
    "ARCHS": "archs",
    "ArchFamily": "archs",
    "BN_COUNTER": "weights",
    "BoxXYXY": "localize",
    "CAMBatch": "maps",
    "CAMNet": "model",
    "CAMOutput": "model",
    "CAMSource": "maps",
    "CellGeometry": "upsample",
    "DERIVATION_REVISION": "receptive",
    "EMPTY_BOX": "localize",
    "EXPORT_FORMAT": "onnx_runner",
    "EXPORT_FORMAT_VERSION": "onnx_runner",
    "FAMILIES": "archs",
    "FORMAT": "checkpoint",
    "FORMAT_KEY": "onnx_runner",
    "FORMAT_VERSION": "checkpoint",
    "IMAGENET_MEAN": "imagenet",
    "IMAGENET_STD": "imagenet",
    "IMG_SIZE_RANGE": "imagenet",
    "INPUT_NAME": "onnx_runner",
    "INVARIANT_TOLERANCE": "model",
    "LAYOUTS": "heads",
    "Layout": "heads",
    "LoadedModel": "checkpoint",
    "METADATA_KEY": "onnx_runner",
    "ModelInfo": "runner",
    "OUTPUT_NAMES": "onnx_runner",
    "OnnxRunner": "onnx_runner",
    "PROBE_SIZE": "receptive",
    "Parts": "heads",
    "REFUSED": "archs",
    "RESNET_ARCHS": "archs",
    "RGB": "runner",
    "Runner": "runner",
    "TIMM_PREFIX": "archs",
    "TorchRunner": "torch_runner",
    "TransformInput": "heads",
    "UPSAMPLE_MODES": "upsample",
    "all_boxes_from_map_thresholds": "localize",
    "arch_problem": "archs",
    "as_array": "maps",
    "box_from_map": "localize",
    "boxes_from_map_thresholds": "localize",
    "build_model": "model",
    "build_parts": "heads",
    "cell_geometry": "receptive",
    "check_cam_invariant": "model",
    "check_finite": "weights",
    "checked_preprocessing": "runner",
    "explain_batch": "maps",
    "family_of": "archs",
    "fill_bn_counters": "weights",
    "heatmap": "maps",
    "imagenet_class_names": "model",
    "imagenet_weights_file": "model",
    "info_from_metadata": "onnx_runner",
    "interpolation_matrix": "upsample",
    "iou": "localize",
    "is_flat": "localize",
    "is_onnx": "loading",
    "is_torch_tensor": "runner",
    "load_checkpoint": "checkpoint",
    "load_imagenet_state_dict": "model",
    "minmax_normalize": "localize",
    "model_from_state_dict": "checkpoint",
    "model_geometry": "receptive",
    "open_runner": "loading",
    "parse_metadata_props": "onnx_runner",
    "peak": "localize",
    "read_onnx_metadata": "onnx_runner",
    "read_weights": "weights",
    "refusal": "archs",
    "rename_legacy_keys": "model",
    "resnet_geometry": "upsample",
    "resolve_class": "maps",
    "resolve_device": "device",
    "runner_from_settings": "loading",
    "save_checkpoint": "checkpoint",
    "scale_box": "localize",
    "select_classes": "maps",
    "softmax": "maps",
    "unstride": "heads",
    "upsample": "upsample",
    "upsample_maps": "maps",
    "upsample_matrices": "upsample",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)
