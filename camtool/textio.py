r"""Reading text inputs and writing JSON, the same way for every command.

Text is read as UTF-8 (BOM or not) or BOM-marked UTF-16; anything else is refused in one line.
JSON is strict: a non-finite float is written as ``null``, paths and unknown objects as strings,
numpy values as numbers and lists. Every text written is valid UTF-8 (:func:`unicode_text`):
a file-name byte that is not UTF-8 becomes ``\xNN``; :func:`name_from_text` undoes it.
"""

from __future__ import annotations

import codecs
import json
import math
import numbers
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from camtool.errors import CamtoolError, InputError
from camtool.fsutil import atomic_write_text

__all__ = [
    "decode_text",
    "name_from_text",
    "path_lines",
    "read_text",
    "tidy_numbers",
    "to_json",
    "unicode_text",
    "write_json",
]

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def decode_text(
    data: bytes,
    source: str,
    *,
    utf16: bool = True,
    refusal: str = "{source}: cannot read text: not UTF-8 (bad byte at offset {offset});",
    error: type[CamtoolError] = InputError,
) -> str:
    """Decode UTF-8 (a leading BOM dropped) or, with ``utf16``, BOM-marked UTF-16 text.

    Raises:
        InputError: (or ``error``) the text is in neither, with ``refusal`` (formatted with
            ``source`` and the bad byte's ``offset``) and " save it as UTF-8".
    """
    try:
        if utf16 and data.startswith(_UTF16_BOMS):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = refusal.format(source=source, offset=exc.start)
        raise error(f"{message} save it as UTF-8") from None


def read_text(path: Path) -> str:
    """Read a text file with :func:`decode_text`.

    Raises:
        InputError: the file is missing, unreadable or in an encoding camtool cannot read.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return decode_text(data, str(path))


def path_lines(chunks: Iterable[bytes | str], source: str) -> Iterator[str]:
    """Paths from a list, one per line (e.g. stdin), blank lines dropped, decoded by
    :func:`os.fsdecode` (a leading UTF-8 BOM dropped).

    Raises:
        InputError: the list is UTF-16 or holds NUL bytes (naming ``source`` and the line).
    """
    for number, raw in enumerate(chunks, 1):
        line = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
        if number == 1 and line.startswith(_UTF16_BOMS):
            raise InputError(f"{source}: the path list is UTF-16 text; give it as UTF-8")
        if number == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        if b"\0" in line:
            raise InputError(f"{source}: line {number} holds a NUL byte; give one path per line")
        text = os.fsdecode(line).rstrip("\r\n")
        if text:
            yield text


def unicode_text(text: str) -> str:
    """``text`` with every byte that is not UTF-8 written as ``\\xNN``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        if all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text):
            raw = text.encode("utf-8", "surrogateescape")  # only surrogateescape's surrogates
            return raw.decode("utf-8", "backslashreplace")
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


_ESCAPED_BYTE = re.compile(r"\\x([89a-f][0-9a-f])")


def name_from_text(text: str) -> str:
    """The inverse of :func:`unicode_text` for names: each ``\\xNN`` (80 to ff) back to its byte."""
    return _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m[1], 16)), text)


SECONDS_DECIMALS = 2  # kept by tidy_numbers for keys ending in "seconds" or "_s"
DECIMALS = 4  # kept for anything else; numbers below 1 keep as many significant digits


def _rounded(value: float, key: str, tidy: bool) -> float | None:
    """``value`` as JSON writes it: ``None`` if NaN or infinite, rounded when ``tidy``."""
    if not math.isfinite(value):
        return None
    if not tidy:
        return value
    if key.endswith(("seconds", "_s")):
        return round(value, SECONDS_DECIMALS)
    if value == 0:
        return 0.0
    magnitude = math.floor(math.log10(abs(value)))  # -4 for 0.00031
    return round(value, max(DECIMALS, DECIMALS - 1 - magnitude))


def _plain(value: Any, tidy: bool, key: str = "") -> Any:
    """``value`` made of JSON types only, floats rounded when ``tidy``."""
    if isinstance(value, str):
        return unicode_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, numbers.Integral):  # numpy integers too
        return int(value)
    if isinstance(value, numbers.Real):  # numpy floats too
        return _rounded(float(value), key, tidy)
    if isinstance(value, Mapping):
        return {unicode_text(str(k)): _plain(v, tidy, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, tidy, key) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays, torch tensors
    if callable(tolist):
        return _plain(tolist(), tidy, key)
    return unicode_text(str(value))


def tidy_numbers(value: Any) -> Any:
    """``value`` (a JSON-like tree, numpy values too) as JSON data with floats rounded.

    Floats keep 4 decimals, and at least 4 significant digits below 1; durations (keys ending
    in ``seconds`` or ``_s``) keep 2; NaN and infinity become ``None``; integers pass unchanged.
    """
    return _plain(value, tidy=True)


def to_json(
    document: Any, *, indent: int | None = 2, ensure_ascii: bool = True, tidy: bool = False
) -> str:
    """``document`` as strict JSON (no NaN or Infinity; numpy values, paths and other objects
    converted), without a trailing newline; ``tidy`` rounds as :func:`tidy_numbers`."""
    return json.dumps(
        _plain(document, tidy), indent=indent, ensure_ascii=ensure_ascii, allow_nan=False
    )


def write_json(path: Path, document: Any, *, tidy: bool = False) -> Path:
    """Write ``document`` (see :func:`to_json`) to ``path`` atomically, with a final newline."""
    atomic_write_text(Path(path), to_json(document, tidy=tidy) + "\n")
    return Path(path)
