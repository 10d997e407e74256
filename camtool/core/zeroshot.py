"""An ImageNet model explaining Imagenette with no fine-tuning: the zero-shot baseline.

Imagenette's classes are ImageNet-1k classes, so keeping their rows ``idx[c]`` of the linear layer
gives a classifier whose map of class ``c`` is exactly ImageNet's map of ``idx[c]`` (Zhou et al.,
CVPR'16, ``cam_c = sum_k w[c, k] f_k``); the softmax runs over the kept classes only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from camtool.core.checkpoint import LoadedModel
from camtool.core.imagenet import IMAGENETTE_CLASSES, IMAGENETTE_INDEX
from camtool.core.model import CAMNet, build_model, check_cam_invariant
from camtool.errors import CamtoolError

__all__ = ["imagenet_indices", "imagenet_subset"]


def imagenet_indices(wnids: Sequence[str], where: str = "the dataset") -> list[int]:
    """The ImageNet-1k index (``0..999``) of each WordNet id, in order.

    Raises:
        CamtoolError: no ids, or an id that is not Imagenette's (naming the first and ``where``
            holds the ids).
    """
    unknown = [w for w in wnids if w not in IMAGENETTE_INDEX]
    if unknown or not wnids:
        found = f"class {unknown[0]!r}" if unknown else "no class"
        raise CamtoolError(
            f"an ImageNet model without --model needs ImageNet/Imagenette class ids, and {where} "
            f"has {found} (Imagenette's ids: {', '.join(IMAGENETTE_INDEX)}); give --model"
        )
    return [IMAGENETTE_INDEX[w] for w in wnids]


def imagenet_subset(arch: str, wnids: Sequence[str], img_size: int) -> LoadedModel:
    """torchvision's (or timm's) ImageNet ``arch`` restricted to Imagenette classes ``wnids``.

    The linear layer keeps the rows of ``wnids``' ImageNet indices, in order, of its weight
    ``(C, K[, 1, 1])`` and bias ``(C,)``. The model is in eval mode, past
    :func:`~camtool.core.model.check_cam_invariant`, with readable names (``"French horn"``).

    Raises:
        CamtoolError: an id that is not Imagenette's (before any weights are read), or no
            ImageNet weights.
    """
    rows = torch.as_tensor(imagenet_indices(wnids, "the classes given"), dtype=torch.long)
    imagenet = build_model(arch, 1000, pretrained=True)
    linear = imagenet.cam_linear
    prefix = next(name for name, module in imagenet.named_modules() if module is linear) + "."
    state = imagenet.state_dict()
    for key in (prefix + "weight", prefix + "bias"):
        if key in state:
            state[key] = state[key][rows].clone()
    model = CAMNet(arch, len(wnids), imagenet.output_stride)
    model.load_state_dict(state)
    model.eval()
    check_cam_invariant(model)
    return LoadedModel(
        model,
        [IMAGENETTE_CLASSES[w] for w in wnids],
        img_size,
        source=f"ImageNet {arch}, zero-shot on {len(wnids)} Imagenette classes",
    )
