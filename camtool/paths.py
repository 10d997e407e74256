"""Checking the paths a command was given before any slow work starts.

Every command checks its files the same way, here, instead of through click's ``exists`` /
``readable`` / ``dir_okay`` flags (which end the whole command with a usage error): an input
image that cannot be read fails alone (the others are processed); a model, a config or another
file the command cannot do without is one line and exit 1 (:class:`~camtool.errors.CamtoolError`);
an output folder that cannot be created or written is refused before a model is loaded.

Permissions are judged with :func:`os.access`, the way the OS will judge the later ``open``.
"""

from __future__ import annotations

import os
from pathlib import Path

from camtool.errors import CamtoolError

__all__ = ["require_file", "require_writable_dir", "unreadable_file_reason"]


def unreadable_file_reason(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, or ``None`` if it can.

    Returns:
        ``"no such file"``, ``"is a folder, not a file"``, ``"permission denied"`` or ``None``.
    """
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

    Args:
        path: the file a command needs.
        what: what it is, for the message (``"model"``, ``"config file"``).

    Raises:
        CamtoolError: missing, a folder, or not readable (exit code 1), e.g.
            ``model not found: m.pt`` or ``cannot read config file c.toml: permission denied``.
    """
    reason = unreadable_file_reason(path)
    if reason == "no such file":
        raise CamtoolError(f"{what} not found: {path}")
    if reason is not None:
        raise CamtoolError(f"cannot read {what} {path}: {reason}")
    return Path(path)


def require_writable_dir(path: Path, what: str = "output folder") -> Path:
    """``path`` if it is a folder that can be written, or one that can be created.

    Nothing is created: the nearest existing ancestor must be a writable folder.

    Raises:
        CamtoolError: ``path`` (or an ancestor) is a file, or the folder is not writable.
    """
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise CamtoolError(f"cannot use {what} {path}: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise CamtoolError(f"cannot write to {what} {path}: permission denied on {probe}")
    return path
