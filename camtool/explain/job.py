"""``camtool cam``: explain a handful of image files with one model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from camtool.core.maps import resolve_class
from camtool.core.runner import ModelInfo, Runner
from camtool.data.labels import true_class
from camtool.explain.files import CamOptions, ImageResult, explain_file, map_paths
from camtool.fsutil import refuse_to_replace, remove_stale_temps, unique_name, writing
from camtool.paths import require_writable_dir, unreadable_file_reason
from camtool.runtime import runner_from_settings
from camtool.settings import SETTINGS_FILE, Settings, write_settings

__all__ = ["QUICK_START_IMAGES", "CamReport", "prepare_output_dir", "run_cam"]

#: Up to this many images, an ONNX model is opened for a quick start rather than fast batches.
QUICK_START_IMAGES = 16


@dataclass
class CamReport:
    """What ``camtool cam`` did."""

    results: list[ImageResult]
    output_dir: Path
    model: ModelInfo | None
    device: str

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.results)


def prepare_output_dir(out_dir: Path, settings: Settings, *, recursive: bool = False) -> Path:
    """Create ``out_dir``, delete what runs killed before left there (in its subfolders too if
    ``recursive``) and save ``settings`` in it; return the settings file.

    Raises:
        CamtoolError: the folder cannot be written (one line).
    """
    with writing(f"to {out_dir}"):
        remove_stale_temps(out_dir, recursive=recursive)  # then write_settings makes the folder
        return write_settings(out_dir, settings)


def run_cam(
    images: Sequence[Path],
    settings: Settings,
    *,
    model_path: Path | None = None,
    imagenet_classes: Sequence[str] | None = None,
    class_spec: str | None = None,
    overlay_only: bool = False,
    save_array: bool = False,
    on_result: Callable[[ImageResult], None] | None = None,
    overwrite: bool = False,
    locate: bool = True,
    runner: Runner | None = None,
    truths: Sequence[int | None] | None = None,
) -> CamReport:
    """Explain each image and write its maps to ``settings.cam.output_dir``.

    Missing or unreadable inputs get their error (through ``on_result``) before the model is
    opened; with none left no model is loaded (``report.model`` is ``None``). A bad image fails
    its result alone. ``imagenet_classes``: Imagenette ids restricting the ImageNet model used
    without ``model_path`` or ``runner``. ``locate``: find each map's peak and box. ``truths``:
    each image's true class (``None``: unknown; default :func:`camtool.data.labels.true_class`).

    Raises:
        CamtoolError: before any image is read: the output folder cannot be written, the model
            cannot be opened, ``class_spec`` names no class, or an output would replace a file
            camtool did not write (unless ``overwrite``).
    """
    out_dir = require_writable_dir(Path(settings.cam.output_dir))
    report = on_result or (lambda _result: None)
    results = [ImageResult(str(path)) for path in images]
    for result in results:
        reason = unreadable_file_reason(Path(result.input))
        if reason is not None:
            result.error = f"{result.input}: {reason}"
            report(result)
    todo = [slot for slot, result in enumerate(results) if result.error is None]  # readable
    if not todo:
        return CamReport(results, out_dir, None, "")
    if runner is None:
        few_images = len(todo) <= QUICK_START_IMAGES
        runner = runner_from_settings(
            model_path, settings, few_images=few_images, imagenet_classes=imagenet_classes
        )
    names = runner.info.class_names
    if truths is None:
        truths = [true_class(result.input, names) for result in results]
    target = resolve_class(class_spec, names) if class_spec is not None else None
    options = CamOptions.from_settings(
        settings, target=target, figure=not overlay_only, save_array=save_array, locate=locate
    )
    taken: set[str] = set()  # stems, with -1, -2 ... added if an earlier input used one
    bases = []
    for result in results:
        stem = unique_name(Path(result.input).stem, taken.__contains__, start=1)
        taken.add(stem)
        bases.append(out_dir / stem)
    count = options.map_count(len(names))
    planned = [path for slot in todo for path in map_paths(bases[slot], options, count)]
    refuse_to_replace(
        planned, overwrite=overwrite, hint=", or choose another -o DIR", marker=SETTINGS_FILE
    )
    prepare_output_dir(out_dir, settings)
    for slot in todo:
        path = Path(results[slot].input)
        results[slot] = explain_file(runner, path, bases[slot], options, truths[slot])
        report(results[slot])
    return CamReport(results, out_dir, runner.info, runner.device)
