"""Plain torchvision state dicts: which accepted arch one is, and the model it loads into.

The linear layer's weight gives the class count. Only families whose marker keys are all present
are tried, those whose parameter count (torchvision's metadata) matches within 0.5% first, each
built on the ``meta`` device; a refused torchvision arch is named with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torchvision
from torch import Tensor

from camtool.core.archs import AUX_HEADS, FAMILIES, refusal
from camtool.core.model import (
    BN_COUNTER,
    CAMNet,
    check_cam_invariant,
    check_finite,
    fill_bn_counters,
    rename_legacy_keys,
)
from camtool.errors import CamtoolError

__all__ = ["fit_state", "model_of_state_dict"]

_WRAPPER_PREFIXES = ("module.", "model.", "resnet.", "backbone.", "net.", "_orig_mod.")


#: Where each family keeps its linear layer's weight, which gives the class count.
_HEAD_WEIGHTS = tuple(dict.fromkeys(family.linear + ".weight" for family in FAMILIES))
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _shapes(state: Mapping[str, Tensor]) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape by name, BatchNorm counters left out (old files lack them)."""
    return {k: tuple(v.shape) for k, v in state.items() if not k.endswith(BN_COUNTER)}


def _unknown(state: Mapping[str, Tensor], message: str, source: str) -> CamtoolError:
    """The error naming the refused torchvision arch ``state`` is (shapes equal but for the
    classifier's), and why; else ``message``."""
    shapes = _shapes(state)
    for arch in torchvision.models.list_models(module=torchvision.models):
        if refusal(arch) is None:
            continue
        with torch.device("meta"):  # no memory: about 1 s for all 27
            own = _shapes(torchvision.models.get_model(arch, weights=None).state_dict())
        if own.keys() != shapes.keys():
            continue
        differ = [k for k in shapes if own[k] != shapes[k]]
        if len(differ) <= 2:  # the classifier's weight and bias
            return CamtoolError(
                f"{source} holds a torchvision {arch} state dict, and {refusal(arch)}"
            )
    return CamtoolError(message)


def _guess_arch(state: Mapping[str, Tensor], num_classes: int, head: str) -> str | None:
    """The accepted torchvision arch with exactly these names and shapes, if any."""
    shapes = _shapes(state)
    count = sum(v.numel() for k, v in state.items() if not k.endswith(_BUFFERS))
    in_features = int(state[head].shape[1])
    candidates = [
        arch
        for family in FAMILIES
        if all(any(k.startswith(m) for k in shapes) for m in family.markers)
        for arch in family.archs
    ]
    matches = set()
    for a in candidates:  # torchvision's count at 1000 outputs, off by a few hundred for some
        # RegNets and counting Inception v3's aux head: hence the 0.5% tolerance
        meta = torchvision.models.get_model_weights(a).DEFAULT.meta
        expected = int(meta["num_params"]) - 1001 * in_features + (in_features + 1) * num_classes
        if abs(expected - count) <= 0.005 * count:
            matches.add(a)
    for arch in sorted(candidates, key=lambda a: a not in matches):
        try:  # on the meta device; for real only if it must and its parameter count matches
            with torch.device("meta"):
                candidate = CAMNet(arch, num_classes)
        except (NotImplementedError, RuntimeError):  # builders that compute on values (RegNet)
            if arch not in matches:
                continue
            candidate = CAMNet(arch, num_classes)
        if _shapes(candidate.state_dict()) == shapes:
            return arch
    return None


def fit_state(model: CAMNet, state: Mapping[str, Tensor], source: str) -> None:
    """Load ``state`` into ``model`` strictly (BatchNorm counters may be absent), all finite.

    Raises:
        CamtoolError: keys missing, unexpected or of another shape; non-finite values.
    """
    own = model.state_dict()
    state = fill_bn_counters(state, own)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = (("missing", missing), ("unexpected", unexpected), ("of another shape", mismatched))
    details = [f"{len(keys)} {what} (e.g. {keys[0]})" for what, keys in problems if keys]
    if details:
        raise CamtoolError(
            f"checkpoint {source} does not fit a {model.arch} with {model.num_classes} classes: "
            + ", ".join(details)
        )
    check_finite(state, source)
    model.load_state_dict(state, strict=True)


def model_of_state_dict(
    state: Mapping[str, Any], *, arch: str | None = None, source: str = "state dict"
) -> CAMNet:
    """The model a plain torchvision state dict loads into, loaded and checked.

    A dict holding it under ``state_dict`` or ``model_state_dict`` (a training script's) is
    unwrapped; wrapper prefixes (``module.``, ``_orig_mod.`` ...) and auxiliary heads are dropped;
    ``arch`` ``None`` is recognised from the tensors; ``source`` names ``state`` in messages.

    Raises:
        CamtoolError: not a state dict, no arch matches, it does not fit ``arch``, or the model
            fails the invariant gate (:func:`~camtool.core.model.check_cam_invariant`).
    """
    state = state.get("state_dict", state.get("model_state_dict", state))
    neither = f"{source} is neither a camtool checkpoint nor a torchvision classifier's state dict"
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CamtoolError(neither)
    changed = True
    while changed and state:  # strip wrapper prefixes, nested ones too
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    state = rename_legacy_keys(state)
    head = next((k for k in _HEAD_WEIGHTS if k in state), None)
    if head is None:
        raise _unknown(state, neither + " that camtool knows", source)
    num_classes = int(state[head].shape[0])
    state = {k: v for k, v in state.items() if not k.startswith(AUX_HEADS)}
    arch = arch or _guess_arch(state, num_classes, head)
    if arch is None:
        raise _unknown(
            state,
            f"{source} does not match any accepted torchvision arch "
            f"({', '.join(f.name for f in FAMILIES)} families); name it with --arch",
            source,
        )
    model = CAMNet(arch, num_classes)
    fit_state(model, state, source)
    check_cam_invariant(model)
    return model
