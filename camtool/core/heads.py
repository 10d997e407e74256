"""Taking a classifier apart for CAM: its trunk (image -> feature map) and its one linear layer.

torchvision archs follow their family's record in :mod:`camtool.core.archs`; ``timm:<name>``
archs use timm's ``forward_features`` and ``get_classifier()``. The classifier's own ``forward``
stays the reference :func:`camtool.core.model.check_cam_invariant` checks the maps against.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, TypeGuard

import torchvision
from torch import Tensor, nn

from camtool.core.archs import TIMM_PREFIX, arch_problem, family_of, timm_name
from camtool.core.imagenet import IMAGENET_MEAN, IMAGENET_STD
from camtool.errors import CamtoolError, ConfigError, first_line

__all__ = ["Parts", "TransformInput", "build_parts", "unstride"]


class TransformInput(nn.Module):
    """GoogLeNet's and Inception v3's ``transform_input``, from the model's own normalisation.

    Per channel: ``y = x * std_c / 0.5 + (mean_c - 0.5) / 0.5`` (torchvision ``googlenet.py``,
    ``inception.py`` hard-code ImageNet's statistics). ``mean``/``std`` are attributes set by
    :meth:`CAMNet.set_input_statistics`, not buffers, so state dicts stay torchvision's.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mean: tuple[float, ...] = IMAGENET_MEAN
        self.std: tuple[float, ...] = IMAGENET_STD

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W) -> (N, 3, H, W)``, on ``x``'s device and dtype."""
        std = x.new_tensor(self.std).view(1, 3, 1, 1)
        mean = x.new_tensor(self.mean).view(1, 3, 1, 1)
        return x * (std / 0.5) + (mean - 0.5) / 0.5


class _TimmFeatures(nn.Module):
    """A timm model's ``forward_features``: the unpooled feature map ``(N, K, h, w)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net.forward_features(x)  # type: ignore[operator,no-any-return]


@dataclass
class Parts:
    """A classifier taken apart; ``trunk`` (``(N, 3, H, W) -> (N, K, h, w)``) shares ``net``'s
    modules, ``linear`` is the linear layer's path in ``net`` and ``conv_head`` marks SqueezeNet's
    map = ReLU(1x1 conv), logit = its mean."""

    net: nn.Module
    trunk: nn.Module
    linear: str
    conv_head: bool
    output_stride: int
    min_size: int = 32


def unstride(stage: nn.Module) -> None:
    """Set every stride-2 layer inside ``stage`` to stride 1; a 2x2 pooling becomes the identity."""
    for module in filter(_stride2, stage.modules()):
        if not isinstance(module, nn.Conv2d) and module.kernel_size in (2, (2, 2)):
            module.kernel_size, module.padding = 1, 0
        module.stride = (1, 1)


def _stride2(module: nn.Module) -> TypeGuard[nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d]:
    layers = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
    return isinstance(module, layers) and module.stride in (2, (2, 2))


def _torchvision_parts(arch: str, num_classes: int, output_stride: int | None) -> Parts:
    layout = family_of(arch)
    assert layout is not None
    stride = layout.strides[0] if output_stride is None else output_stride
    net = torchvision.models.get_model(
        arch, weights=None, num_classes=num_classes, **layout.build_kwargs
    )
    head = ("avgpool", "dropout", layout.linear.split(".")[0])
    layers = [(name, child) for name, child in net.named_children() if name not in head]
    if stride != layout.strides[0]:  # the last child of the stage holding a stride-2 layer
        stages = [child for _, child in layers]
        if layout.stride_stage or len(stages) == 1:
            stages = list(net.get_submodule(layout.stride_stage or layers[0][0]).children())
        unstride([stage for stage in stages if any(map(_stride2, stage.modules()))][-1])
    steps: list[tuple[str, nn.Module]] = []
    if layout.build_kwargs.get("transform_input"):
        transform = TransformInput()
        steps.append(("transform_input", transform))
        # The classifier's own forward (training, logits) rescales through the same module.
        object.__setattr__(net, "_transform_input", transform)
    steps += layers
    if layout.relu_after:
        steps.append(("relu", nn.ReLU()))
    trunk = nn.Sequential(OrderedDict(steps))
    return Parts(net, trunk, layout.linear, layout.conv_head, stride, layout.min_size)


def _timm_parts(name: str, num_classes: int, output_stride: int | None) -> Parts:
    try:
        import timm
    except ImportError:
        raise CamtoolError(
            f"model.arch {TIMM_PREFIX}{name} needs timm: pip install 'camtool[timm]'"
        ) from None
    kwargs: dict[str, Any] = {"pretrained": False, "num_classes": num_classes}
    if output_stride not in (None, 32):
        kwargs["output_stride"] = output_stride
    try:
        net = timm.create_model(name, **kwargs)
    except Exception as exc:  # timm raises many kinds for unknown names and unsupported strides
        raise CamtoolError(f"timm cannot build {name!r} ({first_line(exc)})") from None
    own = [n for n, _ in (*net.named_parameters(recurse=False), *net.named_buffers(recurse=False))]
    if own:
        raise CamtoolError(
            f"{TIMM_PREFIX}{name} keeps tensors outside its submodules ({', '.join(own[:3])}); "
            "camtool takes only convolutional timm models whose weights all sit in submodules"
        )
    getter = getattr(net, "get_classifier", None)
    classifier = getter() if callable(getter) else None
    path = next((p for p, m in net.named_modules() if m is classifier and p), None)
    if not isinstance(classifier, nn.Linear) or path is None:
        raise CamtoolError(
            f"{TIMM_PREFIX}{name} cannot give class activation maps: its classifier is "
            f"{type(classifier).__name__}, not one linear layer"
        )
    info = getattr(net, "feature_info", None)
    reduction = info[-1].get("reduction", 32) if isinstance(info, list) and info else 32
    stride = int(output_stride or reduction)
    return Parts(net, _TimmFeatures(net), path, False, stride)


def build_parts(arch: str, num_classes: int, output_stride: int | None = None) -> Parts:
    """Build ``arch`` (an :data:`~camtool.core.archs.ARCHS` name or ``timm:<name>``) with random
    weights and take it apart; ``output_stride`` 32, 16 or ``None`` for the arch's own.

    Raises:
        ConfigError: a refused or unknown arch, or a stride it cannot have (one line).
        CamtoolError: timm is missing or cannot build the model, or its head is not linear.
    """
    problem = arch_problem(arch, output_stride)
    if problem is not None:
        raise ConfigError(problem)
    name = timm_name(arch)
    if name is not None:
        return _timm_parts(name, num_classes, output_stride)
    return _torchvision_parts(arch, num_classes, output_stride)
