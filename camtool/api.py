"""camtool from Python: load a model, explain images, get arrays back.

::

    model = camtool.load_model("checkpoints/best.pt")      # or "model.onnx", or None for ImageNet
    result = model.explain([Image.open("cat.jpg")], topk=2)
    result.heatmaps[0].shape     # (2, H, W): one map per explained class, at the photo's own size

Everything returned is a NumPy array on the CPU. The maps are the CAMs of Zhou et al. (CVPR'16):
``CAM_c(x, y) = sum_k w[c, k] f_k(x, y)``, whose spatial mean plus the bias is logit ``c``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from camtool.errors import ConfigError, InputError

if TYPE_CHECKING:
    from camtool.core.maps import CAMBatch
    from camtool.core.runner import ModelInfo, Runner
    from camtool.evaluation.samples import DatasetSample

__all__ = ["CamModel", "Explanation", "load_model"]


@dataclass
class Explanation:
    """What :meth:`CamModel.explain` returns for ``N`` images and ``K`` explained classes each.

    Attributes:
        logits: ``(N, C)`` float32, the raw class scores.
        probabilities: ``(N, C)`` float32, softmax of ``logits`` (each row sums to 1).
        class_idx: ``(N, K)`` int64, the explained classes, best first (``K = 1`` with a target).
        class_names: ``N`` lists of ``K`` names, matching ``class_idx``.
        cams: ``N`` float32 arrays ``(K, h_n, w_n)``: raw maps at feature-map resolution
            (``cams[n][k].mean() + bias`` is ``logits[n, class_idx[n, k]]``).
        heatmaps: ``N`` float32 arrays ``(K, H_n, W_n)`` in [0, 1]: each map upsampled to image
            ``n``'s own size and min-max normalised (a flat map is all zeros).
        true_idx: ``N`` true classes, ``None`` where unknown (known for :meth:`CamModel.samples`).
        true_names: ``N`` names of those classes, ``None`` where unknown.
    """

    logits: np.ndarray
    probabilities: np.ndarray
    class_idx: np.ndarray
    class_names: list[list[str]]
    cams: list[np.ndarray]
    heatmaps: list[np.ndarray]
    true_idx: list[int | None] = field(default_factory=list)
    true_names: list[str | None] = field(default_factory=list)


class CamModel:
    """A loaded model that explains images (from :func:`load_model`).

    Attributes:
        info: ``class_names``, ``img_size``, ``mean``/``std``, ``arch``, ``source``.
        device: where it runs (``cpu``, ``cuda``, ``mps``).
    """

    def __init__(self, runner: Runner, path: Path | None = None) -> None:
        self._runner = runner
        self._path = path
        self.info: ModelInfo = runner.info
        self.device = str(runner.device)

    @property
    def class_names(self) -> list[str]:
        """The model's class names; index ``i`` is class ``i``."""
        return list(self.info.class_names)

    def explain(
        self,
        images: Any,
        target: int | str | None = None,
        topk: int = 1,
        upsample: str = "aligned",
    ) -> Explanation:
        """Classify images and return the class activation maps of the chosen classes.

        Args:
            images: a PIL image or a sequence of them (converted to RGB, shorter side resized to
                ``info.img_size``, no crop); a float tensor/array ``(N, 3, H, W)`` or
                ``(3, H, W)`` of RGB in [0, 1] (normalised, not resized); or dataset samples from
                :meth:`samples` (one or a list), whose true classes fill ``true_idx``.
            target: a class (index or name) to explain for every image; ``None``: the predicted.
            topk: with no ``target``, explain the ``topk`` best classes of each image.
            upsample: ``"aligned"`` or ``"conventional"`` (see :mod:`camtool.core.upsample`).

        Raises:
            ConfigError: ``topk`` < 1, or an unknown or ambiguous ``target``.
            InputError: ``images`` is empty or not of a supported kind or shape.
        """
        from camtool.core.maps import resolve_class
        from camtool.explain.files import heatmaps

        if topk < 1:
            raise ConfigError(f"topk must be at least 1 (got {topk})")
        names = self.info.class_names
        index = None if target is None else resolve_class(target, names)
        images, truths = _with_truths(images)
        parts, sizes = self._explained(images, index, topk)
        rows = [(part, row) for part in parts for row in range(part.cams.shape[0])]
        class_idx = np.concatenate([p.class_idx for p in parts]).astype(np.int64)
        true_idx = truths or [None] * len(sizes)
        return Explanation(
            logits=np.concatenate([p.logits for p in parts]).astype(np.float32),
            probabilities=np.concatenate([p.probs for p in parts]).astype(np.float32),
            class_idx=class_idx,
            class_names=[[names[int(c)] for c in row] for row in class_idx],
            cams=[part.cams[row].astype(np.float32) for part, row in rows],
            heatmaps=[
                heatmaps(part, row, size, self.info, upsample)
                for (part, row), size in zip(rows, sizes, strict=True)
            ],
            true_idx=true_idx,
            true_names=[None if t is None else names[t] for t in true_idx],
        )

    def samples(
        self,
        dataset: str = "val",
        *,
        index: int | Sequence[int] | None = None,
        random: int | None = None,
        seed: int = 0,
        data_dir: str | Path | None = None,
    ) -> list[DatasetSample]:
        """Samples of the model's dataset (found and ordered as ``camtool eval`` does), for
        :meth:`explain`.

        Args:
            dataset: ``"val"``, ``"train"``, or a folder of class folders named like the classes.
            index: the sample(s) to take by index; or
            random: draw this many distinct samples (in increasing index order) ...
            seed: ... with this seed.
            data_dir: the dataset root (holding ``train/`` and ``val/``) for a split.

        Returns:
            One :class:`~camtool.evaluation.samples.DatasetSample` per chosen sample.

        Raises:
            ConfigError: both or neither of ``index`` and ``random``; an index beyond the data.
            CamtoolError: no dataset found, or its classes are not the model's.
        """
        from camtool.evaluation.data import SPLITS
        from camtool.evaluation.samples import choose_samples
        from camtool.evaluation.source import dataset_root

        root = None
        if dataset in SPLITS:
            folder = None if data_dir is None else Path(data_dir)
            root = dataset_root(folder, self.info.settings, self._path)
        indices = [index] if isinstance(index, int) else list(index or ())
        return choose_samples(dataset, self.info, root, indices=indices, count=random, seed=seed)[1]

    def _explained(
        self, images: Any, target: int | None, topk: int
    ) -> tuple[list[CAMBatch], list[tuple[int, int]]]:
        """The :class:`~camtool.core.maps.CAMBatch` of each batch of ``images`` and each image's
        own ``(height, width)``."""
        from PIL import Image

        from camtool.core.maps import explain_batch
        from camtool.core.runner import is_torch_tensor
        from camtool.data.images import to_rgb
        from camtool.explain.files import explain_image

        if isinstance(images, Image.Image):
            images = [images]
        if isinstance(images, np.ndarray) or is_torch_tensor(images):
            batch = self._normalise(images)
            part = explain_batch(self._runner, batch, target=target, topk=topk)
            return [part], [tuple(batch.shape[2:])] * batch.shape[0]
        if not isinstance(images, Sequence) or not images:
            raise InputError("images: give a PIL image, a non-empty list of them, or a tensor")
        if not all(isinstance(image, Image.Image) for image in images):
            raise InputError("images: every item of the list must be a PIL image")
        parts = [
            explain_image(self._runner, to_rgb(image), target=target, topk=topk) for image in images
        ]
        return parts, [(image.height, image.width) for image in images]

    def _normalise(self, pixels: Any) -> np.ndarray:
        """``(N, 3, H, W)`` RGB in [0, 1] -> the model's normalised input."""
        from camtool.core.runner import is_torch_tensor
        from camtool.data.images import normalise

        if is_torch_tensor(pixels):
            pixels = pixels.detach().cpu()
            pixels = (pixels.float() if pixels.is_floating_point() else pixels).numpy()
        if pixels.ndim == 3:
            pixels = pixels[None]
        if pixels.ndim != 4 or pixels.shape[1] != 3 or pixels.dtype.kind != "f":
            raise InputError(
                f"images: expected a float tensor (N, 3, H, W) in [0, 1], got "
                f"{pixels.dtype} {tuple(pixels.shape)}"
            )
        return normalise(pixels, self.info.mean, self.info.std)


def _with_truths(images: Any) -> tuple[Any, list[int | None] | None]:
    """Dataset samples as PIL images and their true classes; anything else as it is."""
    samples = sys.modules.get("camtool.evaluation.samples")
    if samples is None:  # no sample was made (and torch, which it imports, stays unimported)
        return images, None
    DatasetSample = samples.DatasetSample
    if isinstance(images, DatasetSample):
        images = [images]
    if isinstance(images, Sequence) and images and isinstance(images[0], DatasetSample):
        if not all(isinstance(s, DatasetSample) for s in images):
            raise InputError("images: a list of dataset samples cannot hold anything else")
        return [s.load() for s in images], [s.true_idx for s in images]
    return images, None


def load_model(
    path: str | Path | None = None,
    *,
    device: str = "auto",
    arch: str | None = None,
    img_size: int = 160,
    imagenet_classes: Sequence[str] | None = None,
) -> CamModel:
    """Load a model to explain images with.

    Args:
        path: a camtool checkpoint (loaded with ``weights_only=True``), a plain torchvision state
            dict, an ONNX file from ``camtool export``, or ``None`` for torchvision's ImageNet
            ``arch``.
        device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:1`` or ``mps``.
        arch: the ImageNet arch when ``path`` is ``None`` (default ``resnet18``), and the arch
            of a plain state dict (``None``: recognised from its tensors).
        img_size: the shorter side images are resized to, for models that do not record one.
        imagenet_classes: with ``path`` ``None``, keep only these ImageNet classes, as Imagenette
            WordNet ids (the zero-shot baseline); ``None`` keeps all 1000.

    Raises:
        CamtoolError: the file is missing or not a model; no such device; an unknown id.
    """
    from camtool.core.loading import open_runner

    model_path = None if path is None else Path(path)
    if model_path is not None and not model_path.is_file():
        raise InputError(f"{model_path}: no such model file")
    runner = open_runner(
        model_path, device, arch=arch, img_size=img_size, imagenet_classes=imagenet_classes
    )
    return CamModel(runner, model_path)
