"""Checking a command's paths (with :func:`os.access`) before any slow work starts."""

from __future__ import annotations

import os
from pathlib import Path

from camtool.errors import CamtoolError

__all__ = ["require_file", "require_writable_dir", "unreadable_file_reason"]


def unreadable_file_reason(path: Path) -> str | None:
    """``"no such file"``, ``"is a folder, not a file"``, ``"permission denied"`` or ``None``."""
    path = Path(path)
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "is a folder, not a file"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a readable file.

    Raises:
        CamtoolError: missing, a folder, or not readable (``what`` names it: ``"model"``).
    """
    reason = unreadable_file_reason(path)
    if reason == "no such file":
        raise CamtoolError(f"{what} not found: {path}")
    if reason is not None:
        raise CamtoolError(f"cannot read {what} {path}: {reason}")
    return Path(path)


def require_writable_dir(path: Path) -> Path:
    """``path`` if it is a writable folder or can be created as one (nothing is created).

    Raises:
        CamtoolError: ``path`` (or an ancestor) is a file, or the folder is not writable.
    """
    path = Path(path)
    probe = next((folder for folder in (path, *path.parents) if folder.exists()), path)
    if probe.exists() and not probe.is_dir():
        raise CamtoolError(f"cannot use output folder {path}: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise CamtoolError(f"cannot write to output folder {path}: permission denied on {probe}")
    return path
