"""The exceptions the core raises (never printing or exiting) and the CLI's exit codes."""

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
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

_SIGINT, _SIGTERM = 2, 15


class CamtoolError(Exception):
    """An error whose one-line ``message`` is shown to the user as it is, with ``exit_code``."""

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
    """Signal ``signum`` stopping a run; a KeyboardInterrupt, so Ctrl-C's cleanup runs too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = int(signum)


def interrupt_exit_code(exc: BaseException | int | None) -> int:
    """The exit code of a run stopped by ``exc`` (or signal number ``exc``): 128 + signal,
    130 for a plain KeyboardInterrupt or ``None``."""
    if isinstance(exc, Interrupted):
        exc = exc.signum
    if isinstance(exc, int) and not isinstance(exc, bool) and exc > 0:
        return 128 + exc
    return EXIT_INTERRUPTED


def interrupt_word(exc: BaseException | int | None) -> str:
    """``"interrupted"`` for Ctrl-C, ``"terminated (SIGTERM)"`` for SIGTERM."""
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
