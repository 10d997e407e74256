"""Which networks camtool can explain, and why the others are refused (no torch import).

CAM needs a head of global average pooling, optional dropout and one linear layer, so that
``logit_c = mean_xy cam_c + b_c`` with ``cam_c = sum_k w[c, k] f_k`` (Zhou et al., CVPR'16);
each family's head was read in ``torchvision/models/<family>.py``. ``output_stride = 16`` sets
the stride-2 layers of the last stride-2 stage to stride 1, dilations unchanged. GoogLeNet and
Inception v3 are built without their auxiliary heads and with ``transform_input``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ARCHS",
    "AUX_HEADS",
    "FAMILIES",
    "REFUSED",
    "RESNET_ARCHS",
    "TIMM_PREFIX",
    "ArchFamily",
    "arch_problem",
    "family_of",
    "refusal",
    "timm_name",
]

TIMM_PREFIX = "timm:"


@dataclass(frozen=True)
class ArchFamily:
    """torchvision archs sharing one head and one way to halve the output stride.

    Attributes:
        markers: state-dict key prefixes every model of the family has (recognition).
        linear: path of the linear layer (SqueezeNet: of its 1x1 convolution). The trunk, from
            the image to the last feature map, is every other child of the classifier but
            ``avgpool`` and ``dropout``, in their (forward) order.
        stride_stage: the container of the last stride-2 stage; ``""``: the trunk itself, or the
            trunk's one child (``features``).
        strides: the output strides camtool can build, torchvision's own first;
            ``stride_note`` says why one is missing.
        min_size: the smallest square input the layers accept, in pixels.
        relu_after: a ReLU follows the trunk before the pooling (DenseNet).
        conv_head: the head is a 1x1 convolution + ReLU before the pooling (SqueezeNet).
    """

    name: str
    archs: tuple[str, ...]
    markers: tuple[str, ...]
    linear: str
    stride_stage: str = ""
    strides: tuple[int, ...] = (32, 16)
    stride_note: str = ""
    min_size: int = 32
    build_kwargs: dict[str, Any] = field(default_factory=dict)
    relu_after: bool = False
    conv_head: bool = False


def _names(prefix: str, suffixes: str) -> tuple[str, ...]:
    return tuple(prefix + s for s in suffixes.split())


# transform_input: torchvision's forward rescales its input first (camtool's TransformInput).
_NO_AUX = {"aux_logits": False, "transform_input": True, "init_weights": True}

FAMILIES: tuple[ArchFamily, ...] = (
    ArchFamily(
        "resnet",
        (
            *_names("resnet", "18 34 50 101 152"),
            *_names("resnext", "50_32x4d 101_32x8d 101_64x4d"),
            *_names("wide_resnet", "50_2 101_2"),
        ),
        ("layer4.", "fc."),
        "fc",
    ),
    ArchFamily(
        "densenet",
        _names("densenet", "121 161 169 201"),
        ("features.denseblock4.",),
        "classifier",
        relu_after=True,
    ),
    ArchFamily(
        "efficientnet",
        (*_names("efficientnet_b", "0 1 2 3 4 5 6 7"), *_names("efficientnet_v2_", "s m l")),
        ("features.0.0.", "classifier.1."),
        "classifier.1",
    ),
    ArchFamily(
        "mobilenet_v2",
        ("mobilenet_v2",),
        ("features.18.0.", "classifier.1."),
        "classifier.1",
    ),
    ArchFamily(
        "mnasnet",
        _names("mnasnet", "0_5 0_75 1_0 1_3"),
        ("layers.", "classifier.1."),
        "classifier.1",
    ),
    ArchFamily(
        "regnet",
        (
            *_names("regnet_x_", "400mf 800mf 1_6gf 3_2gf 8gf 16gf 32gf"),
            *_names("regnet_y_", "400mf 800mf 1_6gf 3_2gf 8gf 16gf 32gf 128gf"),
        ),
        ("stem.", "trunk_output.", "fc."),
        "fc",
        "trunk_output",
    ),
    ArchFamily(
        "shufflenet_v2",
        _names("shufflenet_v2_", "x0_5 x1_0 x1_5 x2_0"),
        ("stage4.", "conv5.", "fc."),
        "fc",
    ),
    ArchFamily(
        "googlenet",
        ("googlenet",),
        ("inception5b.", "fc."),
        "fc",
        build_kwargs=_NO_AUX,
    ),
    ArchFamily(
        "inception_v3",
        ("inception_v3",),
        ("Mixed_7c.", "fc."),
        "fc",
        strides=(32,),
        stride_note="its last reduction (Mixed_7a) pools inside its forward with unpadded layers",
        min_size=75,
        build_kwargs=_NO_AUX,
    ),
    ArchFamily(
        "squeezenet",
        _names("squeezenet", "1_0 1_1"),
        ("features.", "classifier.1."),
        "classifier.1",
        strides=(16,),
        stride_note=(
            "its own output stride is 16 (the last pooling comes before its last four Fire modules)"
        ),
        conv_head=True,
    ),
)
"""The accepted torchvision families."""

ARCHS: tuple[str, ...] = tuple(arch for family in FAMILIES for arch in family.archs)
"""Every torchvision arch camtool builds; ``timm:<name>`` archs come on top (with timm)."""

RESNET_ARCHS: tuple[str, ...] = FAMILIES[0].archs

AUX_HEADS: tuple[str, ...] = ("aux1.", "aux2.", "AuxLogits.")
"""State-dict key prefixes of the auxiliary heads camtool does not build (GoogLeNet's two,
Inception v3's)."""

_HIDDEN_FC = "its head has hidden fully connected layers after the pooling, not one linear layer"
_TRANSFORMER = (
    "it is a vision transformer; camtool explains convolutional networks whose feature map is "
    "average-pooled into one linear layer"
)
REFUSED: dict[str, str] = {
    "alexnet": _HIDDEN_FC,
    "vgg": _HIDDEN_FC,
    "convnext": "its head applies LayerNorm after the pooling, so a map's mean is not its logit",
    "mobilenet_v3": "its head has a hidden linear layer (with Hardswish) after the pooling",
    "maxvit": "its head has LayerNorm and a hidden Tanh layer after the pooling",
    "vit": "it is a vision transformer that classifies its class token, not a pooled map",
    "swin": _TRANSFORMER,
}
"""torchvision classification archs that cannot give CAMs, by name prefix, with the reason."""


def timm_name(arch: str) -> str | None:
    """The timm model name of a ``timm:<name>`` arch, else ``None``."""
    return arch[len(TIMM_PREFIX) :].strip() if arch.startswith(TIMM_PREFIX) else None


def family_of(arch: str) -> ArchFamily | None:
    """The family of a torchvision arch name, or ``None`` (timm archs and unknown names)."""
    return next((family for family in FAMILIES if arch in family.archs), None)


def refusal(arch: str) -> str | None:
    """Why a torchvision arch is refused (one line), or ``None`` if it is not a refused one."""
    for prefix, reason in REFUSED.items():
        rest = arch[len(prefix) :] if arch.startswith(prefix) else None
        if rest is not None and (rest == "" or rest[0] == "_" or rest[0].isdigit()):
            return f"{arch} cannot give class activation maps: {reason}"
    return None


def arch_problem(arch: str, output_stride: int | None = None) -> str | None:
    """What is wrong with an arch name (and stride) in one line, or ``None`` if camtool builds it.

    A ``timm:<name>`` arch is only checked for its form; timm checks the rest when building it.
    """
    name = timm_name(arch)
    if name is not None:
        return None if name else "timm: needs a model name"
    reason = refusal(arch)
    if reason is not None:
        return reason
    family = family_of(arch)
    if family is None:
        return (
            f"unknown arch {arch!r}; choose a torchvision classifier with a pooling + linear head "
            f"({', '.join(f.name for f in FAMILIES)} families) or timm:<name>"
        )
    if output_stride is not None and output_stride not in family.strides:
        return f"{arch} cannot have output stride {output_stride}: {family.stride_note}"
    return None
