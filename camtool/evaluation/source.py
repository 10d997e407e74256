"""Which model and dataset ``camtool eval`` and ``cam --dataset`` read."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from camtool.core.runner import Runner
from camtool.data.datasets import find_dataset_root
from camtool.errors import CamtoolError
from camtool.runtime import dataset_classes, runner_from_settings
from camtool.settings import DatasetSettings, Settings

__all__ = ["data_dir_candidates", "dataset_root", "open_model_and_dataset"]


def open_model_and_dataset(
    model_path: Path | None, settings: Settings, *, few_images: bool = False
) -> tuple[Runner, Path]:
    """``(runner, root)``: the ``--model`` checkpoint or ``.onnx`` file (``None``: the zero-shot
    ImageNet ``model.arch`` on the Imagenette classes of ``dataset.data_dir``) and the root of its
    dataset (:func:`dataset_root`); ``few_images`` as :func:`camtool.core.loading.open_runner`.

    Raises:
        CamtoolError: the model cannot be opened, or no dataset is found.
    """
    if model_path is None:
        root = dataset_root(Path(settings.dataset.data_dir), {}, None)
        runner = runner_from_settings(
            None, settings, few_images=few_images, imagenet_classes=dataset_classes(root)
        )
        return runner, root
    runner = runner_from_settings(Path(model_path), settings, few_images=few_images)
    given = "data_dir" in settings.dataset.model_fields_set
    data_dir = Path(settings.dataset.data_dir) if given else None
    return runner, dataset_root(data_dir, runner.info.settings, Path(model_path))


def dataset_root(data_dir: Path | None, stored: Mapping[str, Any], model_path: Path | None) -> Path:
    """The dataset of a model: ``data_dir`` when given, else the one the checkpoint (``stored``
    its settings) was trained on, looked for in :func:`data_dir_candidates`; ``model_path``
    ``None`` (the zero-shot model) looks in ``data/`` alone.

    Raises:
        CamtoolError: no folder holds a dataset (the message lists those tried).
    """
    if data_dir is not None:
        return find_dataset_root(data_dir)
    if model_path is None:
        return find_dataset_root(Path(DatasetSettings().data_dir))
    tried = data_dir_candidates(stored, model_path)
    for folder in tried:
        try:
            return find_dataset_root(folder)
        except CamtoolError:
            continue
    raise CamtoolError(
        f"no dataset found for {model_path}: tried {', '.join(str(f) for f in tried)}; "
        "give the folder holding train/ and val/ with --data-dir DIR"
    )


def data_dir_candidates(stored: Mapping[str, Any], checkpoint: Path) -> list[Path]:
    """Where the dataset of a checkpoint may be, best first: as recorded; a relative record
    against the checkpoint's folder and the folder training ran in; the recorded name next to the
    checkpoint and one level up; ``data/``."""
    folder = checkpoint.absolute().parent
    candidates: list[Path] = []
    recorded = (stored.get("dataset") or {}).get("data_dir")
    if recorded:
        data_dir = Path(recorded)
        candidates.append(data_dir)
        if not data_dir.is_absolute():
            candidates.append(folder / data_dir)
            ckpt_dir = Path((stored.get("training") or {}).get("checkpoint_dir") or ".")
            base = folder.parts[: len(folder.parts) - len(ckpt_dir.parts)]
            if not ckpt_dir.is_absolute() and base + ckpt_dir.parts == folder.parts:
                candidates.append(Path(*base) / data_dir)  # the folder training ran in
        candidates += [folder / data_dir.name, folder.parent / data_dir.name]
    candidates.append(Path(DatasetSettings().data_dir))
    return list(dict.fromkeys(candidates))
