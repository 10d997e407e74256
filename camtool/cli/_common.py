"""Option declarations and helpers shared by several commands (no heavy imports)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from camtool.choices import DeviceName

if TYPE_CHECKING:
    from camtool.settings import Settings

__all__ = [
    "CLASS_SPEC_HELP",
    "FLAGS",
    "ConfigOpt",
    "DeviceOpt",
    "JsonOpt",
    "OutputDirOpt",
    "resolve_settings",
]

CLASS_SPEC_HELP = (
    "Class to explain: a class name (case-insensitive) or an index from 0. Where classes are "
    "named by numbers, name:2 means the class named 2 and index:2 (or #2) the third class; a "
    "number that could mean either is refused [default: the predicted one]."
)

ConfigOpt = typer.Option(
    None,
    "--config",
    help="TOML settings file (sections [model] [training] [dataset] [cam]).",
    dir_okay=False,
)
DeviceOpt: Any = typer.Option(None, "--device", help="auto, cpu, cuda or mps [default: auto].")
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout, nothing else.")
OutputDirOpt = typer.Option(
    None, "--output-dir", "-o", help="Output folder [default: cam.output_dir, cam_results/]."
)


#: The flag that sets each settings key (the same in every command that has it), named in
#: errors about a value given by flag.
FLAGS: dict[str, str] = {
    "model.pretrained": "--pretrained",
    "dataset.data_dir": "--data-dir",
    "dataset.img_size": "--img-size",
    "training.num_epochs": "--epochs",
    "training.batch_size": "--batch-size",
    "training.learning_rate": "--lr",
    "training.optimizer": "--optimizer",
    "training.scheduler": "--scheduler",
    "training.device": "--device",
    "training.workers": "--workers",
    "training.seed": "--seed",
    "training.checkpoint_dir": "--checkpoint-dir",
    "cam.topk": "--topk",
    "cam.alpha": "--alpha",
    "cam.colormap": "--colormap",
    "cam.output_dir": "--output-dir",
    "cam.max_pixels": "--max-pixels",
}


def resolve_settings(config: Path | None, overrides: dict[str, Any]) -> Settings:
    """Load the settings (imported lazily so --help stays fast); errors name the flags."""
    from camtool.settings import load_settings

    return load_settings(config, overrides, FLAGS)


def device_value(device: DeviceName | None) -> str | None:
    """The plain string of a --device choice, or None when not given."""
    return device.value if device is not None else None
