"""The CAM network: a torchvision ResNet trunk, global average pooling and one linear layer.

Because the head is linear and follows a spatial mean, the class activation map of class ``c``
is the last feature map contracted with row ``c`` of the linear layer's weights (Zhou et al.,
CVPR'16)::

    cam_c(x, y) = sum_k w[c, k] * f_k(x, y)        logit_c = mean_xy cam_c(x, y) + b_c

so one forward pass yields the logits and the maps of every class, with no backward pass.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import torch
import torchvision
from torch import Tensor, nn

from camtool.core.archs import RESNET_ARCHS
from camtool.errors import CamtoolError

__all__ = [
    "CAMNet",
    "CAMOutput",
    "build_model",
    "imagenet_class_names",
    "imagenet_weights_file",
    "load_imagenet_state_dict",
]


class CAMOutput(NamedTuple):
    """What :meth:`CAMNet.forward_cams` returns."""

    logits: Tensor  #: ``(N, C)``
    cams: Tensor  #: ``(N, C, h, w)``, raw (not normalised), at feature-map resolution


class CAMNet(nn.Module):
    """A ResNet whose classifier is global average pooling plus one linear layer.

    The submodules keep torchvision's names (``conv1`` ... ``layer4``, ``fc``), so a plain
    torchvision ResNet state dict loads as it is.

    Args:
        arch: a torchvision ResNet builder name, e.g. ``"resnet18"``.
        num_classes: outputs of the linear layer.
        output_stride: 32 as in torchvision; 16 keeps ``layer4`` at ``layer3``'s resolution
            (a 10x10 map at 160 px instead of 5x5) by giving its first block stride 1.
    """

    def __init__(self, arch: str = "resnet18", num_classes: int = 1000, output_stride: int = 32):
        super().__init__()
        if arch not in RESNET_ARCHS:
            raise CamtoolError(f"unknown arch {arch!r}; choose one of {', '.join(RESNET_ARCHS)}")
        if output_stride not in (16, 32):
            raise CamtoolError("output_stride must be 32 or 16")
        net = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
        self.arch = arch
        self.num_classes = num_classes
        self.output_stride = output_stride
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        self.fc: nn.Linear = net.fc
        if output_stride == 16:
            _unstride(self.layer4)

    def features(self, x: Tensor) -> Tensor:
        """The last convolutional feature map, ``(N, K, h, w)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        """Logits only (pooling before the linear layer: the cheap path for training)."""
        return self.fc(self.features(x).mean(dim=(2, 3)))

    def forward_cams(self, x: Tensor) -> CAMOutput:
        """Logits and the raw CAMs of all classes from one forward pass."""
        feats = self.features(x)
        cams = torch.einsum("nkhw,ck->nchw", feats, self.fc.weight)
        logits = cams.mean(dim=(2, 3)) + self.fc.bias
        return CAMOutput(logits, cams)


def _unstride(stage: nn.Sequential) -> None:
    """Give the first block of a ResNet stage stride 1 (both its conv and its shortcut)."""
    first = stage[0]
    for module in first.modules():
        if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
            module.stride = (1, 1)


def imagenet_class_names(arch: str = "resnet18") -> list[str]:
    """The 1000 ImageNet class names, as torchvision's weights list them (no download)."""
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    return list(weights.meta["categories"])


def imagenet_weights_file(arch: str) -> tuple[str, Path]:
    """The URL of torchvision's ImageNet weights for ``arch`` and where they are cached."""
    url = str(torchvision.models.get_model_weights(arch).DEFAULT.url)
    cache = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    return url, cache


def load_imagenet_state_dict(arch: str, url: str | None = None) -> dict[str, Tensor]:
    """Load torchvision's ImageNet weights for ``arch`` from the cache, downloading if needed.

    The cache (torch.hub's, under ``TORCH_HOME``) is looked at first; a download prints nothing
    (torch.hub's own loader would print a ``Downloading: ...`` line before any error), is
    checked against the hash in the file name (torch.hub's convention) and lands in the cache
    atomically. Loading uses ``weights_only=True``.

    Raises:
        CamtoolError: offline with no cached copy, naming the file to place and the way out;
            or a damaged cached copy, naming it.
    """
    default_url, cache = imagenet_weights_file(arch)
    url = url or default_url
    if not cache.is_file():
        _download_weights(arch, url, cache)
    try:
        state = torch.load(cache, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file raises many kinds of error
        raise CamtoolError(
            f"cannot read the cached ImageNet weights {cache} ({exc.__class__.__name__}); "
            "delete the file to download it again"
        ) from None
    return dict(state)


def _download_weights(arch: str, url: str, cache: Path) -> None:
    """Fetch ``url`` into ``cache`` quietly, checking the hash prefix in its name."""
    match = re.search(r"-([a-f0-9]+)\.", cache.name)
    cache.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(
            url, str(cache), hash_prefix=match.group(1) if match else None, progress=False
        )
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; bad hash is RuntimeError
        raise CamtoolError(
            f"cannot get ImageNet weights for {arch} ({exc.__class__.__name__}: {exc}); "
            f"download {url} and place it at {cache} (or set TORCH_HOME), or do without it: "
            "--no-pretrained for train, --model CKPT for cam"
        ) from None


def build_model(
    arch: str = "resnet18",
    num_classes: int = 1000,
    *,
    pretrained: bool = False,
    output_stride: int = 32,
) -> CAMNet:
    """Build a :class:`CAMNet`, optionally starting from ImageNet weights.

    With ``pretrained`` and ``num_classes != 1000`` the trunk is pretrained and the new linear
    layer is freshly initialised.
    """
    model = CAMNet(arch, num_classes, output_stride)
    if pretrained:
        state = load_imagenet_state_dict(arch)
        if num_classes != 1000:
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        wanted_missing = [] if num_classes == 1000 else ["fc.weight", "fc.bias"]
        if sorted(missing) != sorted(wanted_missing) or unexpected:
            raise CamtoolError(f"ImageNet weights for {arch} do not fit the model")
    return model
