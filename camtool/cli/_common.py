"""Option declarations and helpers shared by several commands (no heavy imports)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from camtool.settings import Settings

__all__ = [
    "FLAGS",
    "AlphaOpt",
    "ArchOpt",
    "BatchSizeOpt",
    "ClassOpt",
    "ColormapOpt",
    "ConfigOpt",
    "DeviceOpt",
    "JsonOpt",
    "ModelOpt",
    "OutputDirOpt",
    "OverwriteOpt",
    "QuietOpt",
    "TopkOpt",
    "WorkersOpt",
    "choice_value",
    "path_option",
    "refuse_class_with_topk",
    "resolve_settings",
]


def path_option(*names: str, metavar: str, help: str, default: Any = None) -> Any:
    """A path flag that camtool checks itself: an unreadable file is one camtool line (exit 1),
    not a usage error."""
    return typer.Option(default, *names, metavar=metavar, help=help, readable=False)


ConfigOpt = path_option(
    "--config",
    metavar="FILE",
    help="TOML settings file (sections [model] [training] [runtime] [dataset] [cam]).",
)
ArchOpt: Any = typer.Option(
    None,
    "--arch",
    metavar="ARCH",
    help="Network (model.arch): resnet18, densenet121, efficientnet_b0, mobilenet_v2 ... or "
    "timm:<name>; names a plain state dict's arch, or the ImageNet model with no --model "
    "[default: resnet18; a state dict's arch is recognised].",
    show_default=False,
)
DeviceOpt: Any = typer.Option(
    None, "--device", metavar="DEVICE", help="auto, cpu, cuda or mps [default: auto]."
)
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout, nothing else.")
QuietOpt = typer.Option(
    False, "--quiet", "-q", help="No progress on stderr (errors and results still show)."
)
OutputDirOpt = path_option(
    "--output-dir",
    "-o",
    metavar="DIR",
    help="Output folder [default: cam.output_dir, cam_results/].",
)
ModelOpt = path_option(
    "--model",
    "-m",
    metavar="FILE",
    help="camtool checkpoint, plain torchvision state dict, or .onnx export "
    "[default: torchvision's ImageNet model of --arch (ResNet-18), 1000 classes].",
)
ClassOpt: Any = typer.Option(
    None,
    "--class",
    "-c",
    metavar="CLASS",
    help="Class to explain: a class name (case-insensitive) or an index from 0. Where classes are "
    "named by numbers, name:2 means the class named 2 and index:2 (or #2) the third class; a "
    "number that could mean either is refused [default: the predicted one]. Not with --topk.",
)
TopkOpt: Any = typer.Option(
    None,
    "--topk",
    "-k",
    min=1,
    metavar="K",
    help="Write a map for each of the K most probable classes [default: 1]. Not with --class.",
)
AlphaOpt: Any = typer.Option(None, metavar="ALPHA", help="Heatmap opacity, 0..1 [default: 0.5].")
ColormapOpt: Any = typer.Option(None, metavar="NAME", help="matplotlib colormap [default: jet].")
BatchSizeOpt: Any = typer.Option(
    None, "--batch-size", "-b", min=1, metavar="N", help="Images per forward pass [default: 64]."
)
WorkersOpt: Any = typer.Option(
    None,
    "--workers",
    "-j",
    metavar="N",
    help="Worker processes reading images; 0 = none [default: 2].",
)
OverwriteOpt = typer.Option(
    False, "--overwrite", help="Replace files in -o DIR that camtool did not write."
)

#: The flag that sets each settings key (the same in every command that has it), named in
#: errors about a value given by flag.
FLAGS: dict[str, str] = {
    "model.arch": "--arch",
    "model.pretrained": "--pretrained",
    "dataset.data_dir": "--data-dir",
    "dataset.img_size": "--img-size",
    "training.num_epochs": "--epochs",
    "training.batch_size": "--batch-size",
    "training.learning_rate": "--lr",
    "training.optimizer": "--optimizer",
    "training.scheduler": "--scheduler",
    "runtime.device": "--device",
    "runtime.workers": "--workers",
    "runtime.batch_size": "--batch-size",
    "training.seed": "--seed",
    "training.checkpoint_dir": "--checkpoint-dir",
    "dataset.val_size": "--val-size",
    "cam.topk": "--topk",
    "cam.alpha": "--alpha",
    "cam.colormap": "--colormap",
    "cam.output_dir": "--output-dir",
    "cam.max_pixels": "--max-pixels",
}


def resolve_settings(config: Path | None, overrides: dict[str, Any]) -> Settings:
    """Load the settings (imported lazily so --help stays fast); errors name the flags.

    Raises:
        CamtoolError: ``config`` is missing, a folder or unreadable (exit 1).
        ConfigError: bad settings (exit 2).
    """
    from camtool.paths import require_file
    from camtool.settings import load_settings

    if config is not None:
        require_file(config, "config file")
    settings = load_settings(config, overrides, FLAGS)
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
