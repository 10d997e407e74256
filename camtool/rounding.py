"""Numbers in JSON documents rounded to what they mean, so no float noise reaches a user.

Used for every ``--json`` document and for ``metrics.json``; see :func:`tidy_numbers`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

__all__ = ["DECIMALS", "SECONDS_DECIMALS", "tidy_numbers"]

#: Decimals kept for a duration (keys ending in ``seconds`` or ``_s``).
SECONDS_DECIMALS = 2
#: Decimals kept for anything else; numbers below 1 keep as many significant digits.
DECIMALS = 4


def _round(value: float, key: str) -> float | None:
    if not math.isfinite(value):
        return None
    if key.endswith(("seconds", "_s")):
        return round(value, SECONDS_DECIMALS)
    if value == 0:
        return 0.0
    magnitude = math.floor(math.log10(abs(value)))  # -4 for 0.00031
    return round(value, max(DECIMALS, DECIMALS - 1 - magnitude))


def tidy_numbers(value: Any, key: str = "") -> Any:
    """``value`` with every float rounded to what it means, for a JSON document.

    Probabilities, metrics, losses and logits keep 4 decimals, and numbers below 1 at least 4
    significant digits (a learning rate of 0.00031, an export's max difference of 2.3e-07);
    durations (a key ending in ``seconds`` or ``_s``) keep 2 decimals; NaN and infinity
    become ``None``. Integers (counts, pixel
    coordinates) and strings pass unchanged. So ``0.41999999999999993`` is written ``0.42``.

    Args:
        value: a JSON-like tree of dicts, lists and scalars.
        key: the dict key ``value`` is stored under (decides the rounding of durations).
    """
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, numbers.Integral):  # numpy integers too
        return int(value)
    if isinstance(value, numbers.Real):  # numpy floats too
        return _round(float(value), key)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays
        return tidy_numbers(value.tolist(), key)
    if isinstance(value, Mapping):
        return {k: tidy_numbers(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [tidy_numbers(v, key) for v in value]
    return value
