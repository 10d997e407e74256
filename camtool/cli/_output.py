"""Where output goes: data on stdout (a rich table, or one JSON document), chatter on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

__all__ = ["err", "out", "print_json"]

#: Tables and other data.
out = Console(soft_wrap=True)
#: Progress bars, notes and warnings.
err = Console(stderr=True, soft_wrap=True)


def print_json(document: Any) -> None:
    """Print exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()
