r"""One way to read text inputs and one way to write JSON, shared by every command.

Text (settings TOML, box CSV files, path lists on stdin) is read the way editors write it:
UTF-8, with or without a byte-order mark (Windows editors add one), or UTF-16 when it starts
with a UTF-16 byte-order mark. Anything else that is not valid UTF-8 is refused in one line
naming the source, instead of being read as garbage.

JSON (every ``--json`` document and every JSON file camtool writes: ``metrics.json``,
``metrics.jsonl``, ``manifest.jsonl``, the download marker, export metadata) goes through
:func:`to_json`. JSON has no NaN or infinity, and writing them (as Python's ``json`` does by
default) yields a file other tools refuse. The rule here: **a non-finite float is written as
``null``** (a value that could not be computed), so a diverged training loss still leaves a
readable ``metrics.jsonl``. Paths and other unknown objects are written as strings, numpy
scalars and arrays as numbers and lists.

Every JSON and CSV file camtool writes is valid UTF-8, also for a file whose name is not (Linux
allows any bytes; Python reads such a name with each bad byte as a lone surrogate): every text
goes through :func:`unicode_text`, which writes each byte that is not UTF-8 as the four
characters ``\xNN`` (Python's ``backslashreplace``), e.g. ``b"caf\xe9.png"`` as ``caf\xe9.png``.
:func:`name_from_text` turns such a text back into the name (``os.fsencode`` then gives the
bytes); a name that itself holds a backslash followed by ``xNN`` cannot be told apart.
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

from camtool.errors import InputError
from camtool.fsutil import atomic_write_text

__all__ = [
    "decode_text",
    "finite_or_none",
    "name_from_text",
    "path_lines",
    "read_text",
    "tidy_numbers",
    "to_json",
    "unicode_text",
    "write_json",
]

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def decode_text(data: bytes, source: str) -> str:
    """Decode the bytes of a text input: UTF-8 (a leading BOM dropped) or BOM-marked UTF-16.

    Args:
        data: the raw bytes.
        source: what they are, for the error message (a path, ``"stdin"``).

    Returns:
        The text, without any byte-order mark.

    Raises:
        InputError: the bytes are not UTF-8 (nor UTF-16 with a BOM); the message names
            ``source`` and the offset of the first bad byte.
    """
    try:
        if data.startswith(_UTF16_BOMS):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source}: cannot read text: not UTF-8 (bad byte at offset {exc.start});"
            " save it as UTF-8"
        ) from None


def read_text(path: Path) -> str:
    """Read a whole text file with :func:`decode_text`.

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
    """Paths from a list, one per line (e.g. stdin), line ends removed, blank lines dropped.

    A UTF-8 byte-order mark at the very start is dropped. File names are bytes on POSIX and
    need not be UTF-8, so other bytes are kept as the file system encoding decodes them
    (:func:`os.fsdecode`). A list in UTF-16 (a BOM or NUL bytes) is refused.

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


def finite_or_none(value: float) -> float | None:
    """``value``, or ``None`` when it is NaN or infinite (the JSON rule of this module)."""
    return value if math.isfinite(value) else None


def unicode_text(text: str) -> str:
    """``text`` with every byte that is not UTF-8 written as ``\\xNN`` (see the module
    docstring); text that is valid Unicode is returned as it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape") if _only_escapes(text) else None
        if raw is not None:
            return raw.decode("utf-8", "backslashreplace")
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _only_escapes(text: str) -> bool:
    """Whether every surrogate in ``text`` is one ``surrogateescape`` makes (U+DC80..U+DCFF)."""
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


_ESCAPED_BYTE = re.compile(r"\\x([89a-f][0-9a-f])")


def name_from_text(text: str) -> str:
    """The inverse of :func:`unicode_text` for names: each ``\\xNN`` (NN from 80 to ff) back to
    the byte it stood for, as Python holds it (``os.fsencode(name_from_text(t))`` is the name's
    bytes)."""
    return _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m[1], 16)), text)


#: Decimals kept for a duration (keys ending in ``seconds`` or ``_s``) by :func:`tidy_numbers`.
SECONDS_DECIMALS = 2
#: Decimals kept for anything else; numbers below 1 keep as many significant digits.
DECIMALS = 4


def _rounded(value: float, key: str) -> float | None:
    if not math.isfinite(value):
        return None
    if key.endswith(("seconds", "_s")):
        return round(value, SECONDS_DECIMALS)
    if value == 0:
        return 0.0
    magnitude = math.floor(math.log10(abs(value)))  # -4 for 0.00031
    return round(value, max(DECIMALS, DECIMALS - 1 - magnitude))


def _plain(value: Any, tidy: bool, key: str = "") -> Any:
    """``value`` made of JSON types only: non-finite floats as ``None``, texts valid Unicode
    (:func:`unicode_text`), floats rounded when ``tidy`` (see :func:`tidy_numbers`)."""
    if isinstance(value, str):
        return unicode_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, numbers.Integral):  # numpy integers too
        return int(value)
    if isinstance(value, numbers.Real):  # numpy floats too
        return _rounded(float(value), key) if tidy else finite_or_none(float(value))
    if isinstance(value, Mapping):
        return {unicode_text(str(k)): _plain(v, tidy, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, tidy, key) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays, torch tensors
    if callable(tolist):
        return _plain(tolist(), tidy, key)
    return unicode_text(str(value))


def tidy_numbers(value: Any) -> Any:
    """``value`` as JSON data with every float rounded to what it means.

    Probabilities, metrics, losses and logits keep 4 decimals, and numbers below 1 at least 4
    significant digits (a learning rate of 0.00031, an export's max difference of 2.3e-07);
    durations (a key ending in ``seconds`` or ``_s``) keep 2 decimals; NaN and infinity
    become ``None``; integers (counts, pixel coordinates) pass unchanged. So
    ``0.41999999999999993`` is written ``0.42``. Every ``--json`` document and ``metrics.json``
    are written so.

    Args:
        value: a JSON-like tree of dicts, lists and scalars (numpy values too).
    """
    return _plain(value, tidy=True)


def to_json(
    document: Any, *, indent: int | None = 2, ensure_ascii: bool = True, tidy: bool = False
) -> str:
    """Serialise ``document`` as strict JSON (never NaN or Infinity; see the module docstring).

    Args:
        document: dicts, lists, strings, numbers, booleans, ``None``; numpy values, paths and
            other objects are converted (numbers and lists; strings).
        indent: spaces per level, or ``None`` for one line.
        ensure_ascii: escape non-ASCII characters.
        tidy: round the numbers (:func:`tidy_numbers`).

    Returns:
        The JSON text, without a trailing newline.
    """
    return json.dumps(
        _plain(document, tidy), indent=indent, ensure_ascii=ensure_ascii, allow_nan=False
    )


def write_json(path: Path, document: Any, *, tidy: bool = False) -> Path:
    """Write ``document`` (see :func:`to_json`) to ``path`` atomically, with a final newline."""
    atomic_write_text(Path(path), to_json(document, tidy=tidy) + "\n")
    return Path(path)
