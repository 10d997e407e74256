"""Where output goes: data on stdout (a rich table, or one JSON document), chatter on stderr.

Every ``--json`` document goes through :func:`print_json`, which rounds numbers to what they
mean (:func:`camtool.textio.tidy_numbers`) and writes NaN and infinity as ``null``. Messages on
stderr are printed as they are (no markup, no highlighting).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = [
    "err",
    "out",
    "print_json",
    "print_report",
    "print_table",
    "report_skipped",
    "report_written",
]

#: Tables and other data.
out = Console(soft_wrap=True)
#: Progress bars, notes and warnings.
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


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


def print_report(report: Any, json_out: bool, show: Callable[[Any], None]) -> None:
    """With ``--json``, ``report.to_dict()`` as the one JSON document; else ``show(report)``."""
    if json_out:
        print_json(report.to_dict())
    else:
        show(report)


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    right: Collection[str] = (),
    **options: Any,
) -> None:
    """Print a rich table on stdout: the ``right`` columns right-aligned, ``options`` to Table
    (a title is left-aligned unless they say otherwise)."""
    from rich.table import Table

    table = Table(**{"title_justify": "left", **options})
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left")
    for row in rows:
        table.add_row(*row)
    out.print(table)


def report_skipped(entries: Iterable[Mapping[str, str]]) -> None:
    """Name each image left out as unreadable on stderr: ``skipped PATH: REASON``."""
    for entry in entries:
        err.print(f"skipped {entry['path']}: {entry['error']}")


def report_written(paths: Iterable[Path | str | None]) -> None:
    """``wrote PATH`` on stderr for each file written (``None``: none)."""
    for path in paths:
        if path is not None:
            err.print(f"wrote {path}")
