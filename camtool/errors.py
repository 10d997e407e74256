"""The one exception type the core raises, and the exit codes the CLI maps it to.

The core never prints and never exits: it raises :class:`CamtoolError` (or a subclass) with a
message meant for a person, and the CLI turns it into one line on stderr and an exit code.
"""

from __future__ import annotations

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "CamtoolError",
    "ConfigError",
    "InputError",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130


class CamtoolError(Exception):
    """An error with a message fit to show a user as it is.

    Args:
        message: one line saying what went wrong and, where possible, what to do about it.
        exit_code: the process exit code the CLI should use.
    """

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class ConfigError(CamtoolError):
    """Settings that are unknown, of the wrong type or out of range (exit code 2)."""

    exit_code = EXIT_USAGE


class InputError(CamtoolError):
    """One input (an image, a box file, an archive) that cannot be used."""
