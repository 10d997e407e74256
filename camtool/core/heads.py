"""Taking a classifier apart for CAM: its trunk (image -> feature map) and its one linear layer.

For torchvision archs, each family's record in :mod:`camtool.core.archs` names the trunk's
submodules, the linear layer and where to halve the output stride; a ``timm:<name>`` arch is
taken apart with timm's API (``forward_features``, ``get_classifier()``; timm builds stride 16
itself). The classifier itself is kept: its ``forward`` is the reference the invariant gate
checks the maps against (:func:`camtool.core.model.check_cam_invariant`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torchvision
from torch import Tensor, nn

from camtool.core.archs import TIMM_PREFIX, ArchFamily, arch_problem, family_of
from camtool.core.imagenet import IMAGENET_MEAN, IMAGENET_STD
from camtool.errors import CamtoolError, ConfigError, first_line

__all__ = ["Parts", "TransformInput", "build_parts", "unstride"]


class TransformInput(nn.Module):
    """GoogLeNet's and Inception v3's ``transform_input``: the checkpoint's normalisation ->
    theirs.

    Per channel ``c``: ``y = x * std_c / 0.5 + (mean_c - 0.5) / 0.5``, i.e. undo the input
    normalisation (``x = (v - mean) / std`` of pixels ``v`` in [0, 1]) and apply
    ``(v - 0.5) / 0.5`` (torchvision ``googlenet.py``, ``inception.py``, which hard-code
    ImageNet's ``mean``/``std``). ``mean``/``std`` are the model's recorded input statistics
    (ImageNet's until :meth:`CAMNet.set_input_statistics` says otherwise); they are attributes,
    not buffers, so state dicts stay torchvision's.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mean: tuple[float, ...] = IMAGENET_MEAN
        self.std: tuple[float, ...] = IMAGENET_STD

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W) -> (N, 3, H, W)``, on ``x``'s device and dtype (no buffers to move)."""
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
    """A classifier taken apart. ``trunk`` and ``net`` share their modules.

    Attributes:
        net: the whole classifier (torchvision's or timm's); its ``forward`` gives the logits.
        trunk: image ``(N, 3, H, W)`` -> last feature map ``(N, K, h, w)``.
        linear: path in ``net`` of the linear layer (or SqueezeNet's 1x1 convolution).
        conv_head: the map is ReLU(1x1 conv) and the logit its mean, with no bias added.
        output_stride: the trunk's total stride.
        min_size: the smallest square input the trunk accepts, in pixels.
    """

    net: nn.Module
    trunk: nn.Module
    linear: str
    conv_head: bool
    output_stride: int
    min_size: int = 32


def unstride(stage: nn.Module) -> None:
    """Set every stride-2 layer inside ``stage`` to stride 1 (the resolution is kept).

    Convolutions keep their kernel and padding (all these use "same" padding). A pooling layer
    whose kernel equals its stride (non-overlapping, e.g. DenseNet's 2x2 average pooling) becomes
    the identity (kernel 1); an overlapping one (3x3, padding 1) keeps its kernel.
    """
    for module in stage.modules():
        if isinstance(module, nn.Conv2d) and _stride2(module):
            module.stride = (1, 1)
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)) and _stride2(module):
            if module.kernel_size in (2, (2, 2)):
                module.kernel_size, module.padding = 1, 0
            module.stride = 1


def _stride2(module: nn.Module) -> bool:
    """Whether ``module`` is a convolution or a pooling layer of stride 2."""
    if isinstance(module, nn.Conv2d):
        return module.stride == (2, 2)
    return isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)) and module.stride in (2, (2, 2))


def _last_strided_stage(net: nn.Module, layout: ArchFamily) -> nn.Module:
    """The last child of ``layout.stride_stage`` (or of the trunk) that holds a stride-2 layer."""
    if layout.stride_stage:
        children = list(net.get_submodule(layout.stride_stage).children())
    else:
        children = [net.get_submodule(name) for name in layout.trunk]
    return [child for child in children if any(map(_stride2, child.modules()))][-1]


def _torchvision_parts(arch: str, num_classes: int, output_stride: int | None) -> Parts:
    layout = family_of(arch)
    assert layout is not None
    stride = layout.strides[0] if output_stride is None else output_stride
    net = torchvision.models.get_model(
        arch, weights=None, num_classes=num_classes, **layout.build_kwargs
    )
    if stride != layout.strides[0]:
        unstride(_last_strided_stage(net, layout))
    steps: list[tuple[str, nn.Module]] = []
    if layout.transform_input:
        transform = TransformInput()
        steps.append(("transform_input", transform))
        # The classifier's own forward (training, logits) rescales through the same module.
        object.__setattr__(net, "_transform_input", transform)
    steps += [(name, net.get_submodule(name)) for name in layout.trunk]
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
        first = first_line(exc)
        raise CamtoolError(f"timm cannot build {name!r} ({first})") from None
    own = [n for n, _ in net.named_parameters(recurse=False)]
    own += [n for n, _ in net.named_buffers(recurse=False)]
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
    """Build ``arch`` with random weights and take it apart.

    Args:
        arch: a torchvision name from :data:`camtool.core.archs.ARCHS` or ``timm:<name>``.
        num_classes: outputs of the linear layer.
        output_stride: 32 or 16; ``None`` for the arch's own (32, SqueezeNet 16).

    Raises:
        CamtoolError: a refused or unknown arch, or a stride it cannot have (one line).
    """
    problem = arch_problem(arch, output_stride)
    if problem is not None:
        raise ConfigError(problem)
    if arch.startswith(TIMM_PREFIX):
        return _timm_parts(arch[len(TIMM_PREFIX) :].strip(), num_classes, output_stride)
    return _torchvision_parts(arch, num_classes, output_stride)
