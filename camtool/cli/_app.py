"""The Typer app, its global options, and the one place where errors become exit codes."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from camtool import __version__
from camtool.errors import EXIT_FAILURE, CamtoolError, interrupt_exit_code, interrupt_word
from camtool.process import sigterm_as_interrupt

__all__ = ["app", "fail"]


def fail(message: str, code: int) -> typer.Exit:
    """Print ``camtool: error: message`` as one line on stderr; return the Exit to raise."""
    one_line = " ".join(str(message).split())
    typer.echo(f"camtool: error: {one_line}", err=True)
    return typer.Exit(code)


def _debug(ctx: typer.Context) -> bool:
    return bool(ctx.find_root().params.get("debug"))


def _is_cli_signal(exc: BaseException) -> bool:
    """Typer's (or click's) own exceptions: usage errors, Exit, Abort. They pass through."""
    return type(exc).__module__.split(".")[0] in ("typer", "click")


class CamtoolGroup(TyperGroup):
    """Runs a sub-command and turns whatever it raises into one line on stderr and an exit code.

    While the command runs, SIGTERM stops it as Ctrl-C does (every command's cleanup for
    KeyboardInterrupt runs), with exit code 143 instead of 130. ``--debug`` (or
    ``CAMTOOL_DEBUG=1``) lets the traceback through instead.
    """

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            with sigterm_as_interrupt():
                return super().invoke(ctx)
        except CamtoolError as exc:
            if _debug(ctx):
                raise
            raise fail(exc.message, exc.exit_code) from None
        except KeyboardInterrupt as exc:
            if _debug(ctx):
                raise
            raise fail(interrupt_word(exc), interrupt_exit_code(exc)) from None
        except OSError as exc:
            if _debug(ctx):
                raise
            where = f": {exc.filename}" if exc.filename else ""
            raise fail(f"{exc.strerror or exc}{where}", EXIT_FAILURE) from None
        except Exception as exc:  # a bug: still one line, with the way to see more
            if _debug(ctx) or _is_cli_signal(exc):
                raise
            raise fail(
                f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                EXIT_FAILURE,
            ) from None


app = typer.Typer(
    name="camtool",
    cls=CamtoolGroup,
    help=(
        "Train an image classifier and see where it looks: Class Activation Maps "
        "(Zhou et al., CVPR'16) from the shell.\n\n"
        "Settings come from --config FILE.toml, CAMTOOL_<SECTION>__<KEY> environment variables "
        "and flags (flags win). Data goes to stdout (--json for scripts), messages to stderr."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"camtool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
    debug: bool = typer.Option(
        False, "--debug", envvar="CAMTOOL_DEBUG", help="Show full tracebacks on errors."
    ),
) -> None:
    """camtool: Class Activation Maps from the shell."""
