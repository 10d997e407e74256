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
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "CamtoolError",
    "ConfigError",
    "InputError",
    "Interrupted",
    "first_line",
    "interrupt_exit_code",
    "interrupt_word",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130
"""Ctrl-C (SIGINT): 128 + 2, the shell's convention."""
EXIT_TERMINATED = 143
"""SIGTERM (``kill``, Slurm, Kubernetes, systemd): 128 + 15."""

_SIGINT, _SIGTERM = 2, 15


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


class Interrupted(KeyboardInterrupt):
    """A signal that stops a run the way Ctrl-C does (SIGTERM raises it in the main thread).

    It is a :class:`KeyboardInterrupt`, so every ``except KeyboardInterrupt`` that cleans up
    after Ctrl-C cleans up after ``kill`` too.

    Args:
        signum: the signal received (``signal.SIGTERM`` is 15).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = int(signum)


def interrupt_exit_code(exc: BaseException | int | None) -> int:
    """The exit code of a run stopped by ``exc`` (or by signal number ``exc``): 128 + signal.

    Ctrl-C (a plain :class:`KeyboardInterrupt`, or ``None``) is 130, SIGTERM 143.
    """
    if isinstance(exc, Interrupted):
        exc = exc.signum
    if isinstance(exc, int) and not isinstance(exc, bool) and exc > 0:
        return 128 + exc
    return EXIT_INTERRUPTED


def interrupt_word(exc: BaseException | int | None) -> str:
    """``"interrupted"`` for Ctrl-C, ``"terminated (SIGTERM)"`` for SIGTERM, for messages."""
    signum = exc.signum if isinstance(exc, Interrupted) else exc
    if signum == _SIGTERM:
        return "terminated (SIGTERM)"
    if isinstance(signum, int) and not isinstance(signum, bool) and signum not in (0, _SIGINT):
        return f"stopped by signal {signum}"
    return "interrupted"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
