"""Which model and which dataset ``camtool eval`` (and ``cam --dataset``) read: one place, so
that every command naming a dataset sample finds the very folder ``eval`` reports on."""

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
    """``(runner, root)``: the model ``--model`` names (a checkpoint or ``.onnx`` file) and the
    root (holding ``train/`` and ``val/``) of the dataset it is evaluated on (:func:`dataset_root`).

    With ``model_path`` ``None`` the model is the zero-shot baseline: ImageNet's ``model.arch``
    restricted to the Imagenette classes of ``dataset.data_dir`` (:mod:`camtool.core.zeroshot`).
    ``few_images``: the model will see a few images only (:func:`camtool.core.loading.open_runner`).

    Raises:
        CamtoolError: the model cannot be opened, or no dataset is found (see
            :func:`dataset_root`).
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
    """The dataset of a model: ``data_dir`` when given, else the checkpoint's own.

    Without ``data_dir`` (``dataset.data_dir`` not set by ``--data-dir``, an env var or the
    config file), the folder the checkpoint was trained on is looked for, in this order: as
    recorded (camtool records it absolute); a relative record against the checkpoint's folder
    and against the folder training ran in (the checkpoint's folder less the recorded
    ``checkpoint_dir``); the recorded folder's name next to the checkpoint and one level up (the
    project moved); and finally ``data/`` here.

    ``stored`` are the settings saved in the checkpoint; ``model_path`` ``None`` (the zero-shot
    ImageNet model, trained on no folder) looks in ``data/`` alone.

    Raises:
        CamtoolError: none of them holds a dataset; the message lists every folder tried and
            says to give ``--data-dir``.
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
    """Where the dataset of a checkpoint may be, best guess first (see :func:`dataset_root`)."""
    folder = checkpoint.absolute().parent
    candidates: list[Path] = []
    recorded = (stored.get("dataset") or {}).get("data_dir")
    if recorded:
        data_dir = Path(recorded)
        candidates.append(data_dir)
        if not data_dir.is_absolute():
            candidates.append(folder / data_dir)
            ckpt_dir = Path((stored.get("training") or {}).get("checkpoint_dir") or ".")
            depth = len(ckpt_dir.parts)
            if not ckpt_dir.is_absolute() and folder.parts[len(folder.parts) - depth :] == (
                ckpt_dir.parts
            ):
                candidates.append(Path(*folder.parts[: len(folder.parts) - depth]) / data_dir)
        candidates += [folder / data_dir.name, folder.parent / data_dir.name]
    candidates.append(Path(DatasetSettings().data_dir))
    return list(dict.fromkeys(candidates))
