"""Data on stdout (a rich table, or one JSON document); messages on stderr, printed as they are."""

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
    "report_written",
]

#: Tables and other data.
out = Console(soft_wrap=True)
#: Progress bars, notes and warnings.
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


def print_json(document: Any, *, exact: bool = False) -> None:
    """Print one JSON document on stdout (NaN and infinity as ``null``); numbers rounded by
    :func:`~camtool.textio.tidy_numbers` unless ``exact`` (settings, which the user wrote)."""
    from camtool.textio import to_json

    sys.stdout.write(to_json(document, tidy=not exact) + "\n")
    sys.stdout.flush()


def print_report(
    report: Any,
    json_out: bool,
    show: Callable[[Any], None],
    skipped: Iterable[Mapping[str, str]] = (),
    notes: Iterable[str] = (),
) -> None:
    """On stderr ``skipped PATH: REASON`` for each image left out as unreadable and the
    ``notes``; then with ``--json`` ``report.to_dict()`` as the one JSON document, else
    ``show(report)``."""
    for entry in skipped:
        err.print(f"skipped {entry['path']}: {entry['error']}")
    for note in notes:
        err.print(note)
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
    """A rich table on stdout: the ``right`` columns right-aligned, ``options`` to Table."""
    from rich.table import Table

    table = Table(**{"title_justify": "left", **options})
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left")
    for row in rows:
        table.add_row(*row)
    out.print(table)


def report_written(paths: Iterable[Path | str | None]) -> None:
    """``wrote PATH`` on stderr for each file written (``None``: none)."""
    for path in paths:
        if path is not None:
            err.print(f"wrote {path}")
