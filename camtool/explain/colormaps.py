"""Colour lookup tables for heatmaps, without matplotlib where camtool can.

The default colormap, ``jet``, is built here from its definition: each channel is a piecewise
linear function of the value in [0, 1] through the knots below (the segment data of MATLAB's and
matplotlib's ``jet``). Any other name is looked up in matplotlib, imported only then, so the
default ``camtool cam --overlay-only`` path never pays matplotlib's import.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["LUT_SIZE", "colormap_lut"]

#: Entries in a lookup table: one per 8-bit heat level.
LUT_SIZE = 256

#: ``jet``: per channel, (value, intensity) knots of a piecewise linear ramp.
_JET_KNOTS: dict[str, tuple[tuple[float, float], ...]] = {
    "red": ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    "green": ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    "blue": ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
}


def _jet(levels: np.ndarray) -> np.ndarray:
    channels = []
    for name in ("red", "green", "blue"):
        xs, ys = zip(*_JET_KNOTS[name], strict=True)
        channels.append(np.interp(levels, xs, ys))
    return np.stack(channels, axis=-1)


@lru_cache(maxsize=8)
def colormap_lut(name: str = "jet") -> np.ndarray:
    """A ``(256, 3)`` uint8 table: row ``i`` is the colour of heat ``i / 255``.

    Args:
        name: ``jet`` (built here) or any matplotlib colormap name.

    Raises:
        KeyError: matplotlib has no colormap of that name.
    """
    levels = np.linspace(0.0, 1.0, LUT_SIZE)
    if name == "jet":
        rgb = _jet(levels)
    else:
        from matplotlib import colormaps

        rgb = colormaps[name].resampled(LUT_SIZE)(np.arange(LUT_SIZE))[:, :3]
    lut = (rgb * 255).astype(np.uint8)
    lut.setflags(write=False)
    return lut
