"""Option declarations and helpers shared by the commands (no heavy imports)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from camtool.settings import Settings

__all__ = [
    "ALPHA",
    "ARCH",
    "BATCH_SIZE",
    "CLASS",
    "COLORMAP",
    "CONFIG",
    "DEVICE",
    "FLAGS",
    "JSON",
    "MODEL",
    "OUTPUT_DIR",
    "OVERWRITE",
    "QUIET",
    "TOPK",
    "WORKERS",
    "choice_value",
    "flag",
    "option",
    "refuse_class_with_topk",
    "resolve_settings",
]


def option(*names: str, default: Any = None, **kwargs: Any) -> Any:
    """``typer.Option``, unset by default; camtool checks paths itself (an unreadable file is
    one camtool line, exit 1, not a usage error)."""
    return typer.Option(default, *names, readable=False, **kwargs)


def flag(*names: str, **kwargs: Any) -> Any:
    """An on/off flag, off by default."""
    return typer.Option(False, *names, **kwargs)


CONFIG = option(
    "--config",
    metavar="FILE",
    help="TOML settings file (sections [model] [training] [runtime] [dataset] [cam]).",
)
ARCH = option(
    "--arch",
    metavar="ARCH",
    help="Network (model.arch): resnet18, densenet121, efficientnet_b0, mobilenet_v2 ... or "
    "timm:<name>; names a plain state dict's arch, or the ImageNet model with no --model "
    "[default: resnet18; a state dict's arch is recognised].",
)
DEVICE = option("--device", metavar="DEVICE", help="auto, cpu, cuda or mps [default: auto].")
JSON = flag("--json", help="Print one JSON document on stdout, nothing else.")
QUIET = flag("--quiet", "-q", help="No progress on stderr (errors and results still show).")
OUTPUT_DIR = option(
    "--output-dir",
    "-o",
    metavar="DIR",
    help="Output folder [default: cam.output_dir, cam_results/].",
)
MODEL = option(
    "--model",
    "-m",
    metavar="FILE",
    help="camtool checkpoint, plain torchvision state dict, or .onnx export "
    "[default: torchvision's ImageNet model of --arch (ResNet-18), 1000 classes].",
)
CLASS = option(
    "--class",
    "-c",
    metavar="CLASS",
    help="Class to explain: a class name (case-insensitive) or an index from 0. Where classes are "
    "named by numbers, name:2 means the class named 2 and index:2 (or #2) the third class; a "
    "number that could mean either is refused [default: the predicted one]. Not with --topk.",
)
TOPK = option(
    "--topk",
    "-k",
    min=1,
    metavar="K",
    help="Write a map for each of the K most probable classes [default: 1]. Not with --class.",
)
ALPHA = option(metavar="ALPHA", help="Heatmap opacity, 0..1 [default: 0.5].")
COLORMAP = option(metavar="NAME", help="matplotlib colormap [default: jet].")
BATCH_SIZE = option(
    "--batch-size", "-b", min=1, metavar="N", help="Images per forward pass [default: 64]."
)
WORKERS = option(
    "--workers", "-j", metavar="N", help="Worker processes reading images; 0 = none [default: 2]."
)
OVERWRITE = flag("--overwrite", help="Replace files in -o DIR that camtool did not write.")

#: The flag that sets each settings key (the same in every command that has it), named in
#: errors about a value given by flag: ``--`` and the key's name, but for two.
FLAGS: dict[str, str] = {
    f"{section}.{key}": "--" + key.replace("_", "-")
    for section, keys in {
        "model": ("arch", "pretrained"),
        "dataset": ("data_dir", "img_size", "val_size"),
        "training": ("batch_size", "optimizer", "scheduler", "seed", "checkpoint_dir"),
        "runtime": ("device", "workers", "batch_size"),
        "cam": ("topk", "alpha", "colormap", "output_dir", "max_pixels"),
    }.items()
    for key in keys
} | {"training.num_epochs": "--epochs", "training.learning_rate": "--lr"}


def resolve_settings(config: Path | None, **sections: dict[str, Any]) -> Settings:
    """Load the settings with the flags' values by section (``None``: not given); errors name
    the flags. Raises CamtoolError (exit 1) for an unreadable ``config``, ConfigError (exit 2)
    for bad settings."""
    from camtool.paths import require_file
    from camtool.settings import load_settings

    if config is not None:
        require_file(config, "config file")
    settings = load_settings(config, sections, FLAGS)
    for note in settings.notes:
        typer.echo(f"camtool: note: {note}", err=True)
    return settings


def refuse_class_with_topk(class_spec: str | None, topk: int | None) -> None:
    """Refuse (ConfigError, exit 2) ``--class`` with ``--topk``: each chooses the maps written."""
    if class_spec is not None and topk is not None:
        from camtool.errors import ConfigError

        raise ConfigError(
            "--class and --topk cannot be combined: --class writes the map of the class it "
            "names, --topk the maps of the K most probable classes; give one of them"
        )


def choice_value(choice: Enum | None) -> str | None:
    """The plain string of a choice flag (``--device cuda``), or None when not given."""
    return None if choice is None else str(choice.value)
