"""Where each cell of a network's last feature map sits on its input, derived from the layers.

Along one axis a map is ``(stride, offset)``: cell ``i`` is centred on input pixel
``offset + stride * i``; the input is ``(1, 0)``. A conv or pooling of kernel ``k``, stride ``s``,
padding ``p`` and dilation ``d`` gives (Araujo et al., "Computing Receptive Fields of
Convolutional Neural Networks", Distill 2019)::

    offset_out = offset_in + stride_in * (d (k - 1) / 2 - p)        stride_out = stride_in * s

Size-keeping ops pass the geometry through, a 1x1 result of a larger input broadcasts, and any
other resizing op is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.fx import GraphModule, Node, symbolic_trace
from torch.fx.passes.shape_prop import ShapeProp

from camtool.core.upsample import CellGeometry
from camtool.errors import CamtoolError

if TYPE_CHECKING:
    from camtool.core.model import CAMNet

__all__ = ["DERIVATION_REVISION", "PROBE_SIZE", "cell_geometry", "model_geometry"]

PROBE_SIZE = 128
"""Side of the probe input used to learn the intermediate sizes (any size the net accepts)."""

DERIVATION_REVISION = 1
"""Revision of the derivation, recorded in checkpoints beside their geometry so a loader can
reuse it; raise it whenever a change here could move any family's cells."""

_Axis = tuple[float, float]  # (stride, offset) along one axis
_Geo = tuple[_Axis, _Axis]  # (y, x)
_GLOBAL = "global"  # a spatially pooled value: no position, broadcasts


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _window(geo: _Geo, kernel: Any, stride: Any, padding: Any, dilation: Any = 1) -> _Geo:
    """Apply a sliding window (conv or pool) to an input geometry; see the module docstring."""
    k, s, d = _pair(kernel), _pair(stride if stride not in (None, ()) else kernel), _pair(dilation)
    if isinstance(padding, str):
        # "valid" pads nothing; "same" pads d (k - 1) in all, the smaller half before.
        p = (0, 0) if padding == "valid" else tuple((d[a] * (k[a] - 1)) // 2 for a in (0, 1))
    else:
        p = _pair(padding)
    y, x = (
        (step * s[a], off + step * (d[a] * (k[a] - 1) / 2 - p[a]))
        for a, (step, off) in enumerate(geo)
    )
    return (y, x)


def _window_args(node: Node, module: nn.Module | None) -> tuple[Any, Any, Any, Any] | None:
    """(kernel, stride, padding, dilation) of a conv/pool node, or None if it is neither."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):  # average pools: no dilation
        return module.kernel_size, module.stride, module.padding, getattr(module, "dilation", 1)
    if node.op != "call_function":
        return None
    args: list[Any] = list(node.args)
    kw: dict[str, Any] = dict(node.kwargs)

    def arg(i: int, name: str, default: Any) -> Any:
        return args[i] if len(args) > i else kw.get(name, default)

    if node.target in (F.conv2d, torch.conv2d):
        weight = args[1] if len(args) > 1 else kw["weight"]
        kernel = tuple(weight.meta["tensor_meta"].shape[-2:])
        return kernel, arg(3, "stride", 1), arg(4, "padding", 0), arg(5, "dilation", 1)
    if node.target in (F.max_pool2d, torch.max_pool2d, F.avg_pool2d):
        dilation = 1 if node.target is F.avg_pool2d else arg(4, "dilation", 1)
        return arg(1, "kernel_size", None), arg(2, "stride", None), arg(3, "padding", 0), dilation
    return None


def _spatial(node: Any) -> tuple[int, int] | None:
    """The last two sizes of a node's >= 3-D tensor (or its tensors, if they agree), or None."""
    if not isinstance(node, Node):
        return None
    meta = node.meta.get("tensor_meta")
    # TensorMetadata is itself a NamedTuple: a sequence of them is one without ``shape``.
    metas = [meta] if hasattr(meta, "shape") or not isinstance(meta, (tuple, list)) else meta
    shapes = [getattr(m, "shape", None) for m in metas]
    sizes = {(int(s[-2]), int(s[-1])) for s in shapes if s is not None and len(s) >= 3}
    return sizes.pop() if len(sizes) == 1 else None


def _describe(node: Node) -> str:
    name = getattr(node.target, "__name__", None) or str(node.target)
    return f"{node.op} {name} ({node.name})"


def _propagate(node: Node, gm: GraphModule, known: dict[Node, Any]) -> Any:
    """The geometry of ``node``'s output from its inputs'."""
    module = gm.get_submodule(str(node.target)) if node.op == "call_module" else None
    inputs = [n for n in node.all_input_nodes if known.get(n) is not None]
    size = _spatial(node)
    window = _window_args(node, module)
    if window is not None:
        geo = known.get(node.all_input_nodes[0])
        if geo == _GLOBAL:
            return _GLOBAL  # e.g. the 1x1 convs of squeeze-and-excitation
        if not isinstance(geo, tuple):
            raise CamtoolError(f"cannot place map cells: {_describe(node)} has no spatial input")
        return _window(geo, *window)
    if size is None:
        return None
    placed = [known[n] for n in inputs if known[n] != _GLOBAL]
    sizes = {s for n in inputs if known[n] != _GLOBAL and (s := _spatial(n)) is not None}
    if not placed:
        return _GLOBAL if inputs else None
    if size == (1, 1) and sizes != {(1, 1)}:
        return _GLOBAL
    if sizes != {size}:
        raise CamtoolError(
            f"cannot place map cells: {_describe(node)} changes the spatial size "
            f"{sorted(sizes)} -> {size} in a way camtool does not know"
        )
    if any(g != placed[0] for g in placed[1:]):
        raise CamtoolError(
            f"cannot place map cells: the inputs of {_describe(node)} sit at different "
            f"places ({placed})"
        )
    return placed[0]


def cell_geometry(
    extractor: nn.Module | Callable[[Tensor], Tensor], probe_size: int = PROBE_SIZE
) -> CellGeometry:
    """Derive ``(stride, offset)`` of the feature map ``extractor`` returns, from its layers.

    Args:
        extractor: a ``torch.fx``-traceable ``nn.Module`` (or function) mapping ``(N, 3, H, W)``
            images to the ``(N, K, h, w)`` feature map.
        probe_size: side of the probe image run once to learn the intermediate sizes.

    Raises:
        CamtoolError: not traceable, or an op that moves cells in a way camtool does not know.
    """
    try:
        gm = symbolic_trace(extractor)
    except Exception as exc:  # fx raises many kinds (TraceError, TypeError, ...)
        raise CamtoolError(f"cannot trace the network to place map cells ({exc})") from None
    first = next(iter(gm.parameters()), None)
    device, dtype = ("cpu", torch.float32) if first is None else (first.device, first.dtype)
    probe = torch.zeros(1, 3, probe_size, probe_size, device=device, dtype=dtype)
    was_training = [m.training for m in gm.modules()]
    gm.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(probe)
    finally:
        for m, mode in zip(gm.modules(), was_training, strict=True):
            m.training = mode
    known: dict[Node, Any] = {}
    result: Any = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            known[node] = ((1.0, 0.0), (1.0, 0.0))
        elif node.op == "output":
            result = known.get(node.args[0]) if isinstance(node.args[0], Node) else None
        elif node.op in ("call_module", "call_function", "call_method"):
            known[node] = _propagate(node, gm, known)
        else:  # get_attr: parameters and buffers have no position
            known[node] = None
    if not isinstance(result, tuple):
        raise CamtoolError("cannot place map cells: the network's output is not a feature map")
    (sy, oy), (sx, ox) = result
    if sy != int(sy) or sx != int(sx):
        raise CamtoolError(f"cannot place map cells: fractional stride {sy}, {sx}")
    return CellGeometry((int(sy), int(sx)), (float(oy), float(ox)))


_CACHE: dict[tuple[str, int, int], CellGeometry] = {}


def model_geometry(model: CAMNet) -> CellGeometry:
    """:func:`cell_geometry` of a :class:`~camtool.core.model.CAMNet`'s ``feature_extractor()``,
    cached per architecture and derived on a meta-device twin when one can be built, else on the
    model itself.

    Raises:
        CamtoolError: the trunk cannot be traced, or moves cells in a way camtool does not know.
    """
    key = (model.arch, model.num_classes, model.output_stride)
    if key not in _CACHE:
        net = model
        # the same CAMNet on the meta device (no memory, no compute), if it can be built there
        with contextlib.suppress(Exception), torch.device("meta"):
            net = type(model)(*key)
        probe = max(PROBE_SIZE, model.cam_min_size)
        _CACHE[key] = cell_geometry(net.feature_extractor(), probe)
    return _CACHE[key]
