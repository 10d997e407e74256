"""``camtool cam``: explain a handful of image files with one model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from camtool.core.loading import runner_from_settings
from camtool.core.maps import resolve_class
from camtool.core.runner import ModelInfo
from camtool.explain.files import CamOptions, ImageResult, explain_file, map_paths
from camtool.fsutil import refuse_to_replace, remove_stale_temps
from camtool.settings import SETTINGS_FILE, Settings, write_settings

__all__ = ["CamReport", "run_cam", "unique_stem"]


@dataclass
class CamReport:
    """What ``camtool cam`` did."""

    results: list[ImageResult]
    output_dir: Path
    model: ModelInfo
    device: str

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.results)


def unique_stem(path: Path, taken: set[str]) -> str:
    """``path``'s stem, with ``-1``, ``-2`` ... added if an earlier input already used it."""
    stem, n = path.stem, 0
    while (stem if n == 0 else f"{stem}-{n}") in taken:
        n += 1
    chosen = stem if n == 0 else f"{stem}-{n}"
    taken.add(chosen)
    return chosen


def run_cam(
    images: Sequence[Path],
    settings: Settings,
    *,
    model_path: Path | None = None,
    class_spec: str | None = None,
    overlay_only: bool = False,
    save_array: bool = False,
    on_result: Callable[[ImageResult], None] | None = None,
    overwrite: bool = False,
) -> CamReport:
    """Explain each image and write its maps to ``settings.cam.output_dir``.

    A bad image is reported in its result and the others go on; a bad model, device or
    ``--class`` raises before any image is read, and so does an output file in the way that
    camtool did not write (a folder without ``camtool-settings.toml``), unless ``overwrite``.
    """
    runner = runner_from_settings(model_path, settings)
    target = resolve_class(class_spec, runner.info.class_names) if class_spec is not None else None
    options = CamOptions(
        target=target,
        topk=settings.cam.topk,
        alpha=settings.cam.alpha,
        colormap=settings.cam.colormap,
        figure=not overlay_only,
        save_array=save_array,
        fmt="png",
        max_pixels=settings.cam.max_pixels,
        upsample=settings.cam.upsample.value,
    )
    out_dir = Path(settings.cam.output_dir)
    taken: set[str] = set()
    bases = [out_dir / unique_stem(Path(path), taken) for path in images]
    count = 1 if target is not None else min(options.topk, len(runner.info.class_names))
    outputs = [p for base in bases for p in map_paths(base, options, count)]
    refuse_to_replace(
        outputs, overwrite=overwrite, hint=", or choose another -o DIR", marker=SETTINGS_FILE
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir)  # of runs killed before
    write_settings(out_dir, settings)
    results = []
    for path, base in zip(images, bases, strict=True):
        result = explain_file(runner, Path(path), base, options)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return CamReport(results, out_dir, runner.info, str(runner.device))
