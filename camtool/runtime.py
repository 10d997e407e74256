"""From settings to a model ready to run (the core never reads settings)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from camtool.core.loading import open_runner
from camtool.core.runner import Runner
from camtool.settings import Settings

__all__ = ["dataset_classes", "runner_from_settings"]


def runner_from_settings(
    model_path: Path | None,
    settings: Settings,
    *,
    few_images: bool = False,
    imagenet_classes: Sequence[str] | None = None,
) -> Runner:
    """:func:`~camtool.core.loading.open_runner` on the settings' device, arch, image size and
    precision; ``model.arch`` names a plain state dict's arch only when it was set."""
    given = "arch" in settings.model.model_fields_set
    return open_runner(
        model_path,
        settings.runtime.device.value,
        arch=settings.model.arch if given else None,
        img_size=settings.dataset.img_size,
        amp=settings.runtime.amp,
        few_images=few_images,
        imagenet_classes=imagenet_classes,
    )


def dataset_classes(data_dir: Path) -> list[str]:
    """The sorted class folders of ``data_dir``'s ``train/``, checked to be Imagenette ids.

    Raises:
        CamtoolError: no dataset there, no class folders, or one that is not an Imagenette id.
    """
    from camtool.core.zeroshot import imagenet_indices
    from camtool.data.datasets import class_names_for, find_dataset_root

    root = find_dataset_root(Path(data_dir))
    wnids = class_names_for(root, "folder")
    imagenet_indices(wnids, str(root / "train"))
    return wnids
