"""Where output goes: data on stdout (a rich table, or one JSON document), chatter on stderr.

Every ``--json`` document goes through :func:`print_json`, which rounds numbers to what they
mean (:func:`camtool.textio.tidy_numbers`) and writes NaN and infinity as ``null``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console

__all__ = ["err", "out", "print_json", "report_skipped"]

#: Tables and other data.
out = Console(soft_wrap=True)
#: Progress bars, notes and warnings.
err = Console(stderr=True, soft_wrap=True)


def print_json(document: Any, *, exact: bool = False) -> None:
    """Print exactly one JSON document on stdout (NaN and infinity as ``null``).

    Args:
        document: JSON-like data (paths and other objects are written as strings).
        exact: keep numbers as they are (for settings, which the user wrote); otherwise
            :func:`~camtool.textio.tidy_numbers` rounds them.
    """
    from camtool.textio import to_json

    sys.stdout.write(to_json(document, tidy=not exact) + "\n")
    sys.stdout.flush()


def report_skipped(entries: Iterable[Mapping[str, str]]) -> None:
    """Name each image left out as unreadable on stderr: ``skipped PATH: REASON``."""
    for entry in entries:
        err.print(f"skipped {entry['path']}: {entry['error']}", markup=False, highlight=False)
