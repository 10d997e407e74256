"""Explaining image files for ``cam`` and ``batch-cam``: :func:`write_maps` writes one image's maps
(overlay, figure, ``.npz``); :func:`explain_file` reads, runs and writes one file."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from camtool.core.localize import box_from_map, peak
from camtool.core.maps import CAMBatch, explain_batch, heatmap
from camtool.core.runner import ModelInfo, Runner
from camtool.data.images import load_image, preprocess_array
from camtool.errors import CamtoolError, InputError
from camtool.explain.render import encode_image, figure_png, overlay
from camtool.fsutil import atomic_path, atomic_write_bytes

if TYPE_CHECKING:
    from camtool.settings import Settings

__all__ = [
    "CamOptions",
    "ImageResult",
    "MapFiles",
    "Prediction",
    "explain_file",
    "explain_image",
    "heatmaps",
    "located_maps",
    "map_paths",
    "map_title",
    "model_input",
    "predictions",
    "refuse_out_of_gpu_memory",
    "write_maps",
]


@dataclass(frozen=True)
class CamOptions:
    """How maps are chosen and drawn."""

    target: int | None = None  #: the class to explain for every image; ``None``: the predicted
    topk: int = 1  #: with no target, a map for each of the top ``topk`` classes
    alpha: float = 0.5  #: heatmap weight in the overlay
    colormap: str = "jet"  #: a matplotlib colormap name
    figure: bool = True  #: write the three-panel figure (PNG) instead of the bare overlay
    save_array: bool = False  #: also write ``.npz`` arrays
    fmt: str = "png"  #: overlay format, ``png`` or ``jpg``
    max_pixels: int | None = None  #: refuse larger images before decoding them
    #: ``"aligned"`` (each cell at its receptive-field centre) or ``"conventional"`` (bilinear)
    upsample: str = "aligned"
    locate: bool = True  #: find each map's peak and box (else ``None``; scipy is not imported)

    @classmethod
    def from_settings(cls, settings: Settings, **flags: Any) -> CamOptions:
        """The options ``settings.cam`` sets, with a command's ``flags`` (``target`` ...) on top."""
        cam = settings.cam
        fields = {name: getattr(cam, name) for name in ("topk", "alpha", "colormap", "max_pixels")}
        return cls(**{**fields, "upsample": cam.upsample.value, **flags})

    def map_count(self, classes: int) -> int:
        """Maps per image for a model of ``classes`` classes: 1 with a target, else top-k."""
        return 1 if self.target is not None else min(self.topk, classes)


@dataclass
class Prediction:
    """One class's score for one image."""

    index: int
    name: str
    probability: float
    logit: float


@dataclass
class MapFiles:
    """One map written for one class; ``peak`` and ``box`` in the image's pixels, ``None`` for a
    flat map (or when not asked for: ``CamOptions.locate``)."""

    class_idx: int
    files: list[str]  #: the figure or overlay, then the ``.npz`` if asked for
    peak: list[int] | None = None  #: ``[x, y]`` of the map's maximum
    #: ``[x0, y0, x1, y1]`` around the largest region above 20% of the maximum (the CAM paper)
    box: list[int] | None = None


@dataclass
class ImageResult:
    """What happened to one input file."""

    input: str  #: the path as given
    #: the ``cam.topk`` most probable classes, best first (fewer if the model has fewer classes,
    #: the top one when a target is given)
    topk: list[Prediction] = field(default_factory=list)
    target: Prediction | None = None  #: the class asked for with ``--class``
    maps: list[MapFiles] = field(default_factory=list)  #: the target's, or one per ``topk``
    error: str | None = None  #: why nothing was written
    #: the image's true class when known (:func:`camtool.data.labels.true_class`), and its name
    true_idx: int | None = None
    true_name: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def outputs(self) -> list[str]:
        return [path for entry in self.maps for path in entry.files]

    def to_dict(self) -> dict[str, Any]:
        """``{input, error, topk: [{index, name, probability, logit}], target, maps:
        [{class_idx, files, peak, box}], true_idx, true_name}``."""
        return asdict(self)


def predictions(
    batch: CAMBatch, row: int, classes: list[int], names: list[str]
) -> list[Prediction]:
    """The :class:`Prediction` of each class in ``classes`` for image ``row`` of ``batch``."""
    probs, logits = batch.probs[row], batch.logits[row]
    return [Prediction(c, names[c], float(probs[c]), float(logits[c])) for c in classes]


def map_paths(base: Path, options: CamOptions, count: int) -> list[Path]:
    """The files :func:`write_maps` writes for ``count`` maps next to ``base``, in its order."""
    paths: list[Path] = []
    for k in range(count):
        stem = f"{base.name}_top{k + 1}" if count > 1 else base.name
        name = f"{stem}_cam.png" if options.figure else f"{stem}_overlay.{options.fmt}"
        paths.append(base.with_name(name))
        if options.save_array:
            paths.append(base.with_name(f"{stem}.npz"))
    return paths


def write_maps(
    image: Image.Image,
    batch: CAMBatch,
    row: int,
    base: Path,
    info: ModelInfo,
    options: CamOptions,
    *,
    on_heatmap: Callable[[int, np.ndarray], None] | None = None,
    true_idx: int | None = None,
) -> list[Path]:
    """Write the maps of image ``row`` of ``batch`` next to ``base`` (no suffix), atomically;
    return :func:`map_paths`: ``<base>_cam.png`` (figure) or ``<base>_overlay.<fmt>``, and
    ``<base>.npz``, with ``_top1``, ``_top2`` ... before the suffix for top-k. Each map is
    upsampled to the image's size (``options.upsample``) and min-max normalised, then passed to
    ``on_heatmap(k, heat)``. ``true_idx`` titles the figure (:func:`map_title`)."""
    written = map_paths(base, options, batch.class_idx.shape[1])
    paths = iter(written)
    heats = heatmaps(batch, row, (image.height, image.width), info, options.upsample)
    for k, heat in enumerate(heats):
        class_idx = int(batch.class_idx[row, k])
        if on_heatmap is not None:
            on_heatmap(k, heat)
        blended = overlay(image, heat, options.alpha, options.colormap)
        if options.figure:
            title, wrong = map_title(batch, row, class_idx, info.class_names, true_idx)
            data = figure_png(image, heat, blended, title, options.colormap, wrong)
        else:
            data = encode_image(blended, options.fmt)
        atomic_write_bytes(next(paths), data)
        if options.save_array:
            with atomic_path(next(paths)) as tmp:
                np.savez_compressed(
                    tmp,
                    cam=np.asarray(batch.cams[row, k], dtype=np.float32),
                    heatmap=heat,
                    logits=np.asarray(batch.logits[row], dtype=np.float32),
                    class_idx=np.int64(class_idx),
                )
    return written


def model_input(image: Image.Image, info: ModelInfo) -> np.ndarray:
    """An RGB ``image`` resized and normalised as ``info``'s model takes it: a ``(3, H, W)``
    float32 array (:func:`~camtool.data.images.preprocess_array`, uncropped)."""
    return preprocess_array(image, info.img_size, info.mean, info.std, stride=info.output_stride)


def explain_image(
    runner: Runner, image: Image.Image, *, target: int | None = None, topk: int = 1
) -> CAMBatch:
    """One RGB ``image`` through :func:`model_input` and ``runner``: its
    :func:`~camtool.core.maps.explain_batch` (``N = 1``) of ``target`` or the top ``topk``."""
    return explain_batch(runner, model_input(image, runner.info)[None], target=target, topk=topk)


def heatmaps(
    batch: CAMBatch, row: int, size: tuple[int, int], info: ModelInfo, mode: str
) -> np.ndarray:
    """The ``K`` maps of image ``row`` of ``batch`` as a ``(K, H, W)`` float32 array in [0, 1]:
    each upsampled to ``size`` = (H, W) (``mode`` with ``info.geometry``) and min-max normalised
    (:func:`~camtool.core.maps.heatmap`)."""
    geometry, input_hw = info.geometry, batch.input_hw
    return np.stack(
        [
            heatmap(cam, size, mode=mode, geometry=geometry, input_hw=input_hw)
            for cam in batch.cams[row]
        ]
    )


def map_title(
    batch: CAMBatch, row: int, class_idx: int, names: list[str], true_idx: int | None
) -> tuple[str, bool]:
    """The figure title of ``class_idx``'s map of image ``row`` and whether the prediction is
    wrong: ``"dog (p = 0.912)"``, or with a true class ``"true: cat | predicted: dog (p = 0.912)"``
    and, for a map of another class, ``" | map: bird (p = 0.050)"``."""
    prob = float(batch.probs[row, class_idx])
    if true_idx is None:
        return f"{names[class_idx]} (p = {prob:.3f})", False
    pred = int(np.argmax(batch.probs[row]))
    pred_prob = float(batch.probs[row, pred])
    title = f"true: {names[true_idx]} | predicted: {names[pred]} (p = {pred_prob:.3f})"
    if class_idx != pred:
        title += f" | map: {names[class_idx]} (p = {prob:.3f})"
    return title, pred != true_idx


def explain_file(
    runner: Runner, path: Path, base: Path, options: CamOptions, true_idx: int | None = None
) -> ImageResult:
    """Explain one image file and write its maps next to ``base`` (``true_idx`` titles the
    figures). This file's own errors (unreadable image, full disk) go into ``error``, not raised."""
    info = runner.info
    result = ImageResult(str(path), true_idx=true_idx)
    if true_idx is not None:
        result.true_name = info.class_names[true_idx]
    try:
        image = load_image(path, options.max_pixels)
        batch = explain_image(runner, image, target=options.target, topk=options.topk)
        result.maps = located_maps(image, batch, 0, base, info, options, true_idx)
    except InputError as exc:
        result.error = exc.message
    except OSError as exc:
        result.error = f"cannot write outputs for {path}: {exc.strerror or exc}"
    except RuntimeError as exc:
        refuse_out_of_gpu_memory(exc, "--device cpu or a smaller image size")
        raise
    else:
        count = options.map_count(batch.logits.shape[1])
        top = np.argsort(-batch.logits[0], kind="stable")[:count]
        result.topk = predictions(batch, 0, top.tolist(), info.class_names)
        if options.target is not None:
            (result.target,) = predictions(batch, 0, [options.target], info.class_names)
    return result


def located_maps(
    image: Image.Image,
    batch: CAMBatch,
    row: int,
    base: Path,
    info: ModelInfo,
    options: CamOptions,
    true_idx: int | None = None,
) -> list[MapFiles]:
    """:func:`write_maps`, then each map's :class:`MapFiles`; if ``options.locate``, its hottest
    pixel ``peak`` and the ``box`` of its largest region above 20% of its maximum
    (:func:`~camtool.core.localize.box_from_map`), both ``None`` for a flat map."""
    maps = [MapFiles(class_idx, []) for class_idx in batch.class_idx[row].tolist()]

    def locate(k: int, heat: np.ndarray) -> None:
        top, box = peak(heat), box_from_map(heat)
        maps[k].peak = list(top) if top is not None else None
        maps[k].box = list(box.as_tuple()) if box.area() else None

    on_heatmap = locate if options.locate else None
    written = write_maps(
        image, batch, row, base, info, options, on_heatmap=on_heatmap, true_idx=true_idx
    )
    per_map = len(written) // len(maps)
    for k, entry in enumerate(maps):
        entry.files = [str(path) for path in written[k * per_map : (k + 1) * per_map]]
    return maps


def refuse_out_of_gpu_memory(exc: BaseException, hint: str) -> None:
    """Raise ``CamtoolError("out of GPU memory; try <hint>")`` if ``exc`` is torch's CUDA
    out-of-memory error (without importing torch)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        raise CamtoolError(f"out of GPU memory; try {hint}") from None
