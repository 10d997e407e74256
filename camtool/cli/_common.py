"""Option declarations and helpers shared by several commands (no heavy imports)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from camtool.choices import DeviceName

if TYPE_CHECKING:
    from camtool.settings import Settings

__all__ = [
    "ConfigOpt",
    "DeviceOpt",
    "JsonOpt",
    "OutputDirOpt",
    "QuietOpt",
    "device_value",
    "resolve_settings",
]

ConfigOpt = typer.Option(
    None,
    "--config",
    help="TOML settings file (sections [model] [training] [dataset] [cam]).",
    readable=False,  # checked by resolve_settings: one camtool line, not a usage error
)
DeviceOpt: Any = typer.Option(None, "--device", help="auto, cpu, cuda or mps [default: auto].")
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout, nothing else.")
QuietOpt = typer.Option(
    False, "--quiet", "-q", help="No progress on stderr (errors and results still show)."
)
OutputDirOpt = typer.Option(
    None,
    "--output-dir",
    "-o",
    help="Output folder [default: cam.output_dir, cam_results/].",
    readable=False,
)


def resolve_settings(config: Path | None, overrides: dict[str, Any]) -> Settings:
    """Load the settings (imported lazily so --help stays fast).

    Raises:
        CamtoolError: ``config`` is missing, a folder or unreadable (exit 1).
        ConfigError: bad settings (exit 2).
    """
    from camtool.paths import require_file
    from camtool.settings import load_settings

    if config is not None:
        require_file(config, "config file")
    return load_settings(config, overrides)


def device_value(device: DeviceName | None) -> str | None:
    """The plain string of a --device choice, or None when not given."""
    return device.value if device is not None else None
