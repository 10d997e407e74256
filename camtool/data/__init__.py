"""Data in: image decoding, datasets and splits, the download, the synthetic shapes, box files.

Modules:

* ``archive``
* ``boxes``
* ``datasets``
* ``download``
* ``images``
* ``splits``
* ``synthetic``

The names below are importable from the package itself; each is loaded from its module on
first use, so importing the package costs nothing.
"""

from __future__ import annotations

from camtool._lazy import lazy_exports

_WHERE: dict[str, str] = {
    "ARCHIVES": "download",
    "ArchiveSpec": "download",
    "BOXES_CSV": "boxes",
    "BOXES_HEADER": "synthetic",
    "Box": "synthetic",
    "Checksum": "archive",
    "DATASET_NAMES": "datasets",
    "DEFAULT_CROP_SCALE": "datasets",
    "DEFAULT_OBJECT_SCALE": "synthetic",
    "DataSplits": "splits",
    "DownloadResult": "download",
    "GroundTruth": "boxes",
    "GtBox": "boxes",
    "IMAGENETTE_CLASSES": "datasets",
    "IMAGE_EXTENSIONS": "datasets",
    "IMAGE_SUFFIXES": "images",
    "ImageFolderDataset": "datasets",
    "MARKER_NAME": "archive",
    "MAX_ASPECT": "images",
    "MAX_XML_BYTES": "boxes",
    "MD5_REFERENCE": "download",
    "MIN_IMAGE_SIZE": "synthetic",
    "ProgressCallback": "download",
    "ResizeGeometry": "images",
    "SHAPES": "synthetic",
    "SkippedImage": "datasets",
    "Warn": "boxes",
    "build_transforms": "datasets",
    "class_names_for": "datasets",
    "clip_box": "boxes",
    "collate_skip_none": "datasets",
    "download_dataset": "download",
    "extract_archive": "archive",
    "extract_dataset": "archive",
    "file_digest": "archive",
    "find_complete": "archive",
    "find_dataset_root": "datasets",
    "fit_boxes": "boxes",
    "input_geometry": "images",
    "is_complete": "archive",
    "is_imagenette": "datasets",
    "load_boxes": "boxes",
    "load_image": "images",
    "make_loader": "datasets",
    "make_shapes_dataset": "synthetic",
    "make_splits": "splits",
    "preprocess": "images",
    "preprocess_array": "images",
    "read_boxes_csv": "synthetic",
    "read_csv_boxes": "boxes",
    "read_voc_dir": "boxes",
    "read_voc_file": "boxes",
    "resized_size": "images",
    "safe_extract": "archive",
    "to_rgb": "images",
    "verify_checksum": "archive",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)
