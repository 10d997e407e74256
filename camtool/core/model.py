"""The CAM network: a classifier's trunk, global average pooling and one linear layer; and its
weights: files read safely, the checks every set passes, torchvision's ImageNet weights.

With a linear head after a spatial mean, one forward pass gives every class's map and logit
(Zhou et al., CVPR'16): ``cam_c(x, y) = sum_k w[c, k] f_k(x, y)``, ``logit_c = mean cam_c + b_c``.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

import torch
import torchvision
from torch import Tensor, nn

from camtool.core.archs import AUX_HEADS, TIMM_PREFIX, timm_name
from camtool.core.heads import TransformInput, build_parts
from camtool.errors import CamtoolError, first_line

__all__ = [
    "BN_COUNTER",
    "INVARIANT_TOLERANCE",
    "CAMNet",
    "CAMOutput",
    "build_model",
    "check_cam_invariant",
    "check_finite",
    "fill_bn_counters",
    "imagenet_class_names",
    "imagenet_weights_file",
    "load_imagenet_state_dict",
    "read_weights",
    "rename_legacy_keys",
]


class CAMOutput(NamedTuple):
    """What :meth:`CAMNet.forward_cams` returns."""

    logits: Tensor  #: ``(N, C)``
    cams: Tensor  #: ``(N, C, h, w)``, raw (not normalised), at feature-map resolution


class CAMNet(nn.Module):
    """A classifier whose head is global average pooling plus one linear layer, with its maps.

    Submodules keep their torchvision (or timm) names, so a plain state dict loads as it is.

    Args:
        arch: a name from :data:`camtool.core.archs.ARCHS`, or ``"timm:<name>"``.
        num_classes: outputs of the linear layer.
        output_stride: 32 or 16 (a 10x10 map at 160 px instead of 5x5); ``None``: the arch's own.

    Raises:
        ConfigError: a refused or unknown arch, or a stride it cannot have.
    """

    def __init__(
        self, arch: str = "resnet18", num_classes: int = 1000, output_stride: int | None = None
    ):
        super().__init__()
        parts = build_parts(arch, num_classes, output_stride)
        for name, child in parts.net.named_children():
            self.add_module(name, child)
        self.arch = arch
        self.num_classes = num_classes
        self.output_stride = parts.output_stride
        # A tuple, so the shared modules are not registered twice; private, as timm has children
        # with public names such as ``conv_head``.
        self._parts = (parts,)

    @property
    def cam_linear(self) -> nn.Linear | nn.Conv2d:
        """The linear layer (SqueezeNet: the 1x1 convolution) whose rows weight the map."""
        return cast("nn.Linear | nn.Conv2d", self.get_submodule(self._parts[0].linear))

    @property
    def cam_min_size(self) -> int:
        """The smallest square input the trunk accepts, in pixels."""
        return self._parts[0].min_size

    def cam_bias(self) -> Tensor:
        """``b`` in ``logit_c = mean(cam_c) + b_c``, ``(C,)``: zero where the map holds it."""
        linear = self.cam_linear
        if self._parts[0].conv_head or linear.bias is None:
            return torch.zeros(self.num_classes, device=linear.weight.device)
        return linear.bias

    def set_input_statistics(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """The per-channel ``mean``/``std`` inputs are normalised with, for archs that rescale
        their input themselves (:class:`~camtool.core.heads.TransformInput`)."""
        for module in self._parts[0].trunk.modules():  # the trunk holds it, not the classifier
            if isinstance(module, TransformInput):
                module.mean, module.std = tuple(map(float, mean)), tuple(map(float, std))

    def feature_extractor(self) -> nn.Module:
        """The module from ``(N, 3, H, W)`` images to the last feature map ``(N, K, h, w)``
        (an ``nn.Sequential`` for torchvision archs), sharing this model's weights."""
        return self._parts[0].trunk

    def feature_map(self, x: Tensor) -> Tensor:
        """The last feature map, ``(N, K, h, w)``."""
        return self._parts[0].trunk(x)  # type: ignore[no-any-return]

    def forward(self, x: Tensor) -> Tensor:
        """Logits only, ``(N, C)``: the network's own forward (used for training)."""
        return self._parts[0].net(x)  # type: ignore[no-any-return]

    def forward_cams(self, x: Tensor) -> CAMOutput:
        """Logits ``(N, C)`` and raw CAMs ``(N, C, h, w)`` of all classes, float32, in one pass.

        The trunk may run under autocast; the contraction ``cam_c = sum_k w_ck f_k`` (Zhou et al.,
        2016, eq. 2) and the logits always run in float32, outside it.
        """
        feats = self.feature_map(x)
        with torch.autocast(feats.device.type, enabled=False):
            return self._contract(feats.float())

    def _contract(self, feats: Tensor) -> CAMOutput:
        linear = self.cam_linear
        weight = linear.weight.float()
        if self._parts[0].conv_head:  # SqueezeNet: map = ReLU(1x1 conv), logit = its mean
            bias = None if linear.bias is None else linear.bias.float()
            cams = torch.relu(torch.nn.functional.conv2d(feats, weight, bias))
            return CAMOutput(cams.mean(dim=(2, 3)), cams)
        cams = torch.einsum("nkhw,ck->nchw", feats, weight.flatten(1))
        logits = cams.mean(dim=(2, 3)) + self.cam_bias().float()
        return CAMOutput(logits, cams)


#: Largest allowed |mean(cam) + b - logit|, relative to max(1, max |logit|).
INVARIANT_TOLERANCE = 1e-3


def check_cam_invariant(model: CAMNet) -> None:
    """Refuse a model whose maps do not reproduce its own logits (the invariant gate).

    On a fixed random image (eval mode, global RNG untouched) the network's forward must equal
    ``mean_xy cam_c + b_c`` within :data:`INVARIANT_TOLERANCE` x ``max(1, max |logit|)``
    (Zhou et al., CVPR'16).

    Raises:
        CamtoolError: naming the arch and the error found.
    """
    device = model.cam_linear.weight.device
    size = max(model.cam_min_size, 64)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(1, 3, size, size + size // 4, generator=generator).to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            reference = model(images).float()
            feats = model.feature_map(images)
            if feats.dim() != 4:
                raise CamtoolError(
                    f"{model.arch} is refused: its features are not a (N, K, h, w) map "
                    f"(shape {tuple(feats.shape)}), so it has no class activation maps"
                )
            weight = model.cam_linear.weight
            if feats.shape[1] != weight.shape[1]:
                raise CamtoolError(
                    f"{model.arch} is refused: its feature map has {feats.shape[1]} channels but "
                    f"its classifier takes {weight.shape[1]} inputs (a hidden layer sits between)"
                )
            logits, cams = model.forward_cams(images)
            recomposed = cams.float().mean(dim=(2, 3)) + model.cam_bias().float()
    except CamtoolError:
        raise
    except Exception as exc:  # a model that cannot run on the check input has no checked maps
        raise CamtoolError(
            f"{model.arch} is refused: it cannot be run to check its maps ({first_line(exc)})"
        ) from None
    finally:
        model.train(was_training)
    error = max(
        float((recomposed - reference).abs().max()), float((logits.float() - reference).abs().max())
    )
    limit = INVARIANT_TOLERANCE * max(1.0, float(reference.abs().max()))
    if not (torch.isfinite(reference).all() and torch.isfinite(cams).all()):
        raise CamtoolError(
            f"{model.arch} is refused: its logits or maps are not finite (NaN or infinite "
            "weights?) on the check input"
        )
    if not error <= limit:
        raise CamtoolError(
            f"{model.arch} is refused: the mean of its class activation maps plus the bias differs "
            f"from its logits by {error:.3g} (allowed {limit:.3g}); its head is not global "
            "average pooling + one linear layer"
        )


#: BatchNorm's step counter: a buffer older PyTorch versions did not save (PyTorch < 0.4.1).
BN_COUNTER = "num_batches_tracked"

_REASON_CHARS = 120


def read_weights(path: Path, *, hint: str = "") -> Any:
    """``torch.load`` ``path`` with ``weights_only=True``; any failure is one line, + ``hint``.

    Raises:
        CamtoolError: missing, empty, not a PyTorch file (text, a foreign zip, truncated), or
            one that would need to run code to load; the message names ``path``.
    """
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    if not path.is_file():
        raise CamtoolError(f"checkpoint not found: {path}{tail}")
    if path.stat().st_size == 0:
        raise CamtoolError(f"{path} is an empty file, not a PyTorch checkpoint{tail}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CamtoolError(
            f"refusing to load {path}: it is not a plain weights file (loading it would need to"
            f" run code from it, or it is not a checkpoint at all){tail}"
        ) from None
    except MemoryError:
        raise CamtoolError(
            f"{path} is not a readable PyTorch checkpoint (bad sizes){tail}"
        ) from None
    except Exception as exc:  # torch's readers raise many kinds on foreign or damaged files
        with open(path, "rb") as f:  # zip archives, or legacy pickles (protocol byte 0x80)
            head = f.read(8)
        if not head.startswith((b"PK", b"\x80")):
            reason = f"neither a zip archive nor a pickle: it starts with {head!r}"
        else:  # the first sentence of torch's error (for a foreign file: ``KeyError: 101``)
            reason = (" ".join(str(exc).split()) or type(exc).__name__).split(". ")[0]
            if len(reason) > _REASON_CHARS:
                reason = reason[: _REASON_CHARS - 3] + "..."
        raise CamtoolError(
            f"{path} is not a readable PyTorch checkpoint ({reason}){tail}"
        ) from None


def fill_bn_counters(
    state: Mapping[str, Tensor], wanted: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """``state`` plus, as 0, the BatchNorm counters ``wanted`` has and ``state`` lacks (as
    torchvision loads old files; the counter only matters for ``momentum=None``)."""
    filled = dict(state)
    for key, value in wanted.items():
        if key.rsplit(".", 1)[-1] == BN_COUNTER and key not in filled:
            filled[key] = torch.zeros_like(value, device="cpu")
    return filled


def check_finite(state: Mapping[str, Tensor], source: str) -> None:
    """Refuse weights holding NaN or infinity.

    Raises:
        CamtoolError: naming ``source``, the first offending tensor and how many values.
    """
    for key, value in state.items():
        if isinstance(value, Tensor) and value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise CamtoolError(
                    f"{source} holds non-finite weights: {bad} NaN or infinite value(s) in {key}"
                    " (a diverged or damaged training run); use an earlier checkpoint"
                )


def imagenet_class_names(arch: str = "resnet18") -> list[str]:
    """The 1000 ImageNet class names from torchvision's weights (no download; timm: the same)."""
    source = "resnet18" if arch.startswith(TIMM_PREFIX) else arch
    weights = torchvision.models.get_model_weights(source).DEFAULT
    return list(weights.meta["categories"])


def imagenet_weights_file(arch: str) -> tuple[str, Path]:
    """The URL of torchvision's ImageNet weights for ``arch`` and where they are cached."""
    url = str(torchvision.models.get_model_weights(arch).DEFAULT.url)
    cache = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    return url, cache


def load_imagenet_state_dict(arch: str) -> dict[str, Tensor]:
    """torchvision's ImageNet weights for ``arch``, from torch.hub's cache or downloaded.

    A download prints nothing and is checked against the hash in the file name; the file is
    read by :func:`read_weights`, must be finite, and has legacy keys renamed.

    Raises:
        CamtoolError: offline with no cached copy (naming the file to place), or a cached file
            that is unreadable, foreign or non-finite (saying to delete it).
    """
    url, cache = imagenet_weights_file(arch)
    if not cache.is_file():
        match = torch.hub.HASH_REGEX.search(cache.name)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(
                url, str(cache), hash_prefix=match.group(1) if match else None, progress=False
            )
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad hash RuntimeError
            raise CamtoolError(
                f"cannot get ImageNet weights for {arch} ({exc.__class__.__name__}: {exc}); "
                f"download {url} and place it at {cache} (or set TORCH_HOME), or do without it: "
                "--no-pretrained for train, --model CKPT for cam"
            ) from None
    hint = f"delete {cache} to download the ImageNet weights again"
    state = read_weights(cache, hint=hint)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CamtoolError(f"{cache} does not hold ImageNet weights for {arch}; {hint}")
    check_finite(state, f"{cache} ({hint})")
    return rename_legacy_keys(dict(state))


def rename_legacy_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename old torchvision keys: DenseNet's ``norm.1``, ``conv.2`` to ``norm1``, ``conv2``."""
    return {_DENSE_LEGACY.sub(r"\1\2.", key): value for key, value in state.items()}


_DENSE_LEGACY = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.")


def _pretrained_state(model: CAMNet) -> dict[str, Tensor]:
    """ImageNet weights for ``model``'s arch, keyed like ``model.state_dict()``."""
    name = timm_name(model.arch)
    if name is None:
        state = load_imagenet_state_dict(model.arch)
        return {k: v for k, v in state.items() if not k.startswith(AUX_HEADS)}
    import timm

    kwargs: dict[str, Any] = (
        {} if model.output_stride == 32 else {"output_stride": model.output_stride}
    )
    try:
        net = timm.create_model(name, pretrained=True, num_classes=model.num_classes, **kwargs)
    except Exception as exc:  # hub, network and file errors all mean the same here
        raise CamtoolError(
            f"cannot get pretrained weights for {model.arch} ({type(exc).__name__}: {exc}); "
            "set model.pretrained = false (--no-pretrained) to train from scratch"
        ) from None
    return dict(net.state_dict())


def build_model(
    arch: str = "resnet18",
    num_classes: int = 1000,
    *,
    pretrained: bool = False,
    output_stride: int | None = None,
) -> CAMNet:
    """Build a :class:`CAMNet`, optionally from ImageNet weights, past :func:`check_cam_invariant`.

    With ``pretrained`` and ``num_classes != 1000`` only the trunk is pretrained.

    Raises:
        ConfigError: a refused or unknown arch, or a stride it cannot have.
        CamtoolError: no ImageNet weights (offline), or the model fails the invariant gate.
    """
    model = CAMNet(arch, num_classes, output_stride)
    if pretrained:
        state = fill_bn_counters(_pretrained_state(model), model.state_dict())
        head = model._parts[0].linear + "."
        fresh_head = num_classes != 1000 and not arch.startswith(TIMM_PREFIX)
        if fresh_head:
            state = {k: v for k, v in state.items() if not k.startswith(head)}
        missing, unexpected = model.load_state_dict(state, strict=False)
        wanted_missing = [head + "weight", head + "bias"] if fresh_head else []
        if sorted(missing) != sorted(wanted_missing) or unexpected:
            raise CamtoolError(f"ImageNet weights for {arch} do not fit the model")
    check_cam_invariant(model)
    return model
