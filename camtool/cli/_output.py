"""Where output goes: data on stdout (a rich table, or one JSON document), chatter on stderr."""

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


def print_json(document: Any) -> None:
    """Print exactly one JSON document on stdout (NaN and infinity as ``null``)."""
    from camtool.textio import to_json

    sys.stdout.write(to_json(document) + "\n")
    sys.stdout.flush()


def report_skipped(entries: Iterable[Mapping[str, str]]) -> None:
    """Name each image left out as unreadable on stderr: ``skipped PATH: REASON``."""
    for entry in entries:
        err.print(f"skipped {entry['path']}: {entry['error']}", markup=False, highlight=False)
