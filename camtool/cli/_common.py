"""Option declarations and helpers shared by several commands (no heavy imports)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from camtool.choices import DeviceName

if TYPE_CHECKING:
    from camtool.settings import Settings

__all__ = ["ArchOpt", "ConfigOpt", "DeviceOpt", "JsonOpt", "OutputDirOpt", "resolve_settings"]

ConfigOpt = typer.Option(
    None,
    "--config",
    help="TOML settings file (sections [model] [training] [dataset] [cam]).",
    dir_okay=False,
)
ArchOpt: Any = typer.Option(
    None,
    "--arch",
    help="Network (model.arch): resnet18, densenet121, efficientnet_b0, mobilenet_v2 ... or "
    "timm:<name>; names a plain state dict's arch, or the ImageNet model with no --model "
    "[default: resnet18; a state dict's arch is recognised].",
    show_default=False,
)
DeviceOpt: Any = typer.Option(None, "--device", help="auto, cpu, cuda or mps [default: auto].")
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout, nothing else.")
OutputDirOpt = typer.Option(
    None, "--output-dir", "-o", help="Output folder [default: cam.output_dir, cam_results/]."
)


def resolve_settings(config: Path | None, overrides: dict[str, Any]) -> Settings:
    """Load the settings (imported lazily so --help stays fast)."""
    from camtool.settings import load_settings

    return load_settings(config, overrides)


def device_value(device: DeviceName | None) -> str | None:
    """The plain string of a --device choice, or None when not given."""
    return device.value if device is not None else None
