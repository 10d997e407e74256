"""camtool's command line: each module declares one command's options and calls the core once."""

from __future__ import annotations

from camtool.cli import batch_cam, cam, config, demo, download, eval, export, train  # noqa: F401  (registers the commands)
from camtool.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``camtool`` console script."""
    app()
