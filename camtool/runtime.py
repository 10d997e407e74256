"""From settings to a model ready to run: the layer between :mod:`camtool.settings` and the core.

The core (:mod:`camtool.core`) never reads settings; commands call :func:`runner_from_settings`,
which passes ``[runtime]``'s device and precision, ``[model]``'s arch and ``[dataset]``'s image
size on to :func:`camtool.core.loading.open_runner`.
"""

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
    """:func:`~camtool.core.loading.open_runner` on the device, arch, image size and precision
    the settings name.

    ``model.arch`` names the ImageNet model, and the arch of a plain state dict only when it
    was set (by ``--arch``, the config file or the environment); otherwise that is recognised.

    Raises:
        CamtoolError: as :func:`~camtool.core.loading.open_runner`.
    """
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
    """The class folders of the dataset at ``data_dir`` (of its ``train/``), sorted, checked to
    be Imagenette WordNet ids: the ``imagenet_classes`` of :func:`runner_from_settings` for the
    zero-shot baseline on that dataset.

    Raises:
        CamtoolError: no dataset there, no class folders, or one that is not an Imagenette id
            (the one line names the folder and says to give ``--model``).
    """
    from camtool.core.zeroshot import imagenet_indices
    from camtool.data.datasets import class_names_for, find_dataset_root

    root = find_dataset_root(Path(data_dir))
    wnids = class_names_for(root, "folder")
    imagenet_indices(wnids, str(root / "train"))
    return wnids
