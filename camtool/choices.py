"""The named choices of settings and flags; no heavy imports (``camtool --help`` uses them)."""

from __future__ import annotations

from enum import Enum

__all__ = [
    "DatasetName",
    "DeviceName",
    "ExportFormat",
    "LocalizationProtocol",
    "Optimizer",
    "OutputFormat",
    "Scheduler",
    "Split",
    "UpsampleMode",
]


class Optimizer(str, Enum):
    """Optimizers ``camtool train`` knows."""

    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


class Scheduler(str, Enum):
    """Learning-rate schedules ``camtool train`` knows."""

    reduce_lr = "reduce_lr"
    cosine = "cosine"


class DeviceName(str, Enum):
    """Where to run: ``auto`` picks CUDA, then MPS, then the CPU."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class DatasetName(str, Enum):
    """Dataset layouts: Imagenette (wnid folders) or any ``train|val/<class>/`` folder."""

    imagenette = "imagenette"
    folder = "folder"


class OutputFormat(str, Enum):
    """Image format of written overlays."""

    png = "png"
    jpg = "jpg"


class UpsampleMode(str, Enum):
    """How a raw map becomes pixels (see :mod:`camtool.core.upsample`)."""

    aligned = "aligned"
    conventional = "conventional"


class Split(str, Enum):
    """Split folders ``camtool eval`` and ``cam --dataset`` read."""

    val = "val"
    train = "train"


class LocalizationProtocol(str, Enum):
    """How MaxBoxAccV2 is computed: camtool's conventions or wsolevaluation's exactly."""

    camtool = "camtool"
    wsol = "wsol"


class ExportFormat(str, Enum):
    """File formats ``camtool export`` writes."""

    onnx = "onnx"
    torchscript = "torchscript"
