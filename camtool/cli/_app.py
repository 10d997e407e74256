"""The Typer app, its global options, and the one place where errors become exit codes."""

from __future__ import annotations

import functools
import os
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from camtool.cli._common import flag
from camtool.errors import (
    EXIT_FAILURE,
    EXIT_USAGE,
    CamtoolError,
    interrupt_exit_code,
    interrupt_word,
)
from camtool.process import sigterm_as_interrupt
from camtool.version import __version__

__all__ = ["COMMAND_ORDER", "app", "command", "fail"]

#: The commands in the order a new user meets them; ``camtool --help`` lists them so.
COMMAND_ORDER = ("demo", "download", "train", "eval", "cam", "batch-cam", "export", "config")

#: The parser's error for a bad command line: click's ``UsageError``, from whichever click Typer
#: uses (its own vendored copy in later Typers), found as the base of ``typer.BadParameter``.
UsageError: type[Exception] = next(
    cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "UsageError"
)


def fail(message: str, code: int, *, every_rank: bool = False) -> typer.Exit:
    """Print ``camtool: error: message`` as one line on stderr; return the Exit to raise.

    Under torchrun only rank 0 prints (every rank meets the same bad settings), unless
    ``every_rank`` (a bug, a failing disk: errors one process may meet alone), where the others
    print too, naming their rank. Every rank exits with ``code``.
    """
    one_line = " ".join(str(message).split())
    rank = os.environ.get("RANK", "0")
    if rank == "0" or os.environ.get("WORLD_SIZE", "1") == "1":  # not under torchrun, or rank 0
        typer.echo(f"camtool: error: {one_line}", err=True)
    elif every_rank:
        typer.echo(f"camtool: error: [rank {rank}] {one_line}", err=True)
    return typer.Exit(code)


def usage_line(exc: Any) -> str:
    """A usage error as one line, without the usage block or pydantic's ``Value error,``."""
    text = exc.format_message().replace("Value error, ", "").rstrip(".")
    text = text[:1].lower() + text[1:]
    names: list[str] = []
    ctx = exc.ctx
    while ctx is not None and ctx.parent is not None:  # the root's name is how python was run
        names.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return text + f" (see {' '.join(['camtool', *names])} --help)"


class CamtoolCommand(TyperCommand):
    """Help names arguments by their metavar (``IMAGE...``), with no Python type beside them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        """``[OPTIONS]`` then each argument: ``IMAGE...`` when required, ``[NAME]`` if not."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if not isinstance(param, TyperArgument):
                continue
            name = param.metavar or (param.name or "").upper()
            if param.nargs != 1 and not name.endswith("..."):
                name += "..."
            pieces.append(name if param.required else f"[{name}]")
        return pieces


class CamtoolGroup(TyperGroup):
    """Turns whatever a sub-command raises into one line on stderr and an exit code (usage
    errors: 2, without click's usage block); SIGTERM stops a command as Ctrl-C does, exit code
    143. ``--debug`` (or ``CAMTOOL_DEBUG=1``) lets the traceback through instead."""

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda name: rank.get(name, len(rank)))

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        try:
            return super().parse_args(ctx, args)
        except UsageError as exc:
            raise (_exit_for(exc) or exc) from None

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            with sigterm_as_interrupt():
                return super().invoke(ctx)
        except (Exception, KeyboardInterrupt) as exc:
            if ctx.find_root().params.get("debug"):
                raise
            raise (_exit_for(exc) or exc) from None


def _exit_for(exc: BaseException) -> typer.Exit | None:
    """Print the one line for ``exc`` and return the Exit to raise; ``None`` for what passes
    through (Typer's own exits, click 8.2+'s help for a bare command)."""
    if isinstance(exc, UsageError):
        if type(exc).__name__ == "NoArgsIsHelpError":  # by name, as Typer matches it
            return None
        return fail(usage_line(exc), EXIT_USAGE)
    if isinstance(exc, CamtoolError):
        return fail(exc.message, exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        return fail(interrupt_word(exc), interrupt_exit_code(exc))
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return fail(f"{exc.strerror or exc}{where}", EXIT_FAILURE, every_rank=True)
    if type(exc).__module__.split(".")[0] in ("typer", "click"):  # Exit, Abort: pass through
        return None
    return fail(  # a bug: still one line, with the way to see more
        f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
        EXIT_FAILURE,
        every_rank=True,
    )


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

#: ``app.command`` for every camtool command.
command = functools.partial(app.command, cls=CamtoolCommand)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"camtool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = flag(
        "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = flag("--debug", envvar="CAMTOOL_DEBUG", help="Show full tracebacks on errors."),
) -> None:
    """camtool: Class Activation Maps from the shell."""
