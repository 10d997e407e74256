"""camtool's settings: one validated model, resolved from defaults, a TOML file, env vars and flags.

The sections mirror the reference lab's ``cam_config.yaml`` (``[model]``, ``[training]``,
``[dataset]``, same key names) plus ``[cam]``. Precedence, highest first::

    command-line flag  >  CAMTOOL_<SECTION>__<KEY> env var  >  --config FILE.toml  >  defaults

A flag the user did not give is ``None`` and is dropped before merging, so it overrides nothing.
Every problem (unknown key, wrong type, value out of range) is reported at once, by key path, as a
:class:`~camtool.errors.ConfigError`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.exceptions import SettingsError

from camtool.choices import DatasetName, DeviceName, Optimizer, Scheduler, UpsampleMode
from camtool.errors import ConfigError
from camtool.fsutil import atomic_write_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "SETTINGS_FILE",
    "CamSettings",
    "DatasetSettings",
    "ModelSettings",
    "Settings",
    "TrainingSettings",
    "drop_unset",
    "leaf_paths",
    "load_settings",
    "read_toml",
    "settings_to_toml",
    "write_settings",
]

#: The file, beside every output, that records the settings it was made with.
SETTINGS_FILE = "camtool-settings.toml"

ENV_PREFIX = "CAMTOOL_"


class _Section(BaseModel):
    """A settings section: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSettings(_Section):
    """``[model]``: the network."""

    name: str = Field("resnet_cam", description="A label for the model (kept from the reference).")
    arch: str = Field("resnet18", description="Any torchvision ResNet: resnet18 ... resnet152.")
    input_shape: list[int] | None = Field(
        None, description="Optional [channels, height, width]; must agree with dataset.img_size."
    )
    num_classes: int | None = Field(
        None, ge=1, description="Classes of the head; by default taken from the dataset."
    )
    residual: bool = Field(True, description="Kept from the reference; camtool models are ResNets.")
    pretrained: bool = Field(True, description="Start from torchvision's ImageNet weights.")
    output_stride: int = Field(32, description="32, or 16 to keep the last stage at full res.")

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str) -> str:
        from camtool.core.archs import RESNET_ARCHS

        if value not in RESNET_ARCHS:
            raise ValueError(f"unknown arch {value!r}; choose one of {', '.join(RESNET_ARCHS)}")
        return value

    @field_validator("input_shape")
    @classmethod
    def _three_dims(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (len(value) != 3 or value[0] != 3 or min(value) < 1):
            raise ValueError("must be [3, height, width] with positive sizes")
        return value

    @field_validator("residual")
    @classmethod
    def _residual_only(cls, value: bool) -> bool:
        if not value:
            raise ValueError("camtool's models are ResNets: residual must be true")
        return value

    @field_validator("output_stride")
    @classmethod
    def _stride(cls, value: int) -> int:
        if value not in (16, 32):
            raise ValueError("must be 32 or 16")
        return value


class TrainingSettings(_Section):
    """``[training]``: the optimisation loop."""

    learning_rate: float = Field(0.001, gt=0, description="Initial learning rate.")
    batch_size: int = Field(64, ge=1, description="Images per step.")
    num_epochs: int = Field(50, ge=1, description="Maximum number of epochs.")
    weight_decay: float = Field(0.0001, ge=0, description="L2 weight decay.")
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum (sgd only).")
    checkpoint_dir: Path = Field(Path("checkpoints"), description="Where checkpoints are written.")
    log_every: int = Field(10, ge=1, description="Batches between progress updates.")
    save_every: int = Field(2, ge=1, description="Epochs between numbered checkpoints.")
    early_stopping_patience: int = Field(5, ge=0, description="Epochs without gain; 0 = off.")
    optimizer: Optimizer = Field(Optimizer.adam, description="adam, adamw or sgd.")
    scheduler: Scheduler = Field(Scheduler.reduce_lr, description="reduce_lr or cosine.")
    device: DeviceName = Field(DeviceName.auto, description="auto, cpu, cuda or mps.")
    workers: int = Field(2, ge=0, description="DataLoader worker processes.")
    seed: int = Field(0, ge=0, description="Seed for shuffling, augmentation and init.")
    amp: bool = Field(True, description="Mixed precision on CUDA (bf16 where supported).")

    @field_validator("learning_rate", "weight_decay", "momentum")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class DatasetSettings(_Section):
    """``[dataset]``: where the images are and how big they are fed."""

    name: DatasetName = Field(DatasetName.imagenette, description="imagenette or folder.")
    data_dir: Path = Field(Path("data"), description="Folder holding the dataset.")
    img_size: int = Field(160, ge=16, le=4096, description="Side the images are resized to.")
    val_size: int | float = Field(
        0.1,
        description="Images held out of train/ for validation: a count >= 1, or a fraction "
        "0 < f < 1 of train/ (at least one per class where the class has two or more).",
    )

    @field_validator("val_size")
    @classmethod
    def _count_or_fraction(cls, value: int | float) -> int | float:
        if isinstance(value, float) and value.is_integer() and value >= 1:
            value = int(value)
        if isinstance(value, int) and value >= 1:
            return value
        if isinstance(value, float) and 0 < value < 1:
            return value
        raise ValueError("must be a count >= 1 or a fraction between 0 and 1 (e.g. 0.1)")


class CamSettings(_Section):
    """``[cam]``: how maps are drawn."""

    alpha: float = Field(0.5, ge=0, le=1, description="Heatmap opacity in the overlay.")
    colormap: str = Field("jet", description="Any matplotlib colormap name.")
    topk: int = Field(1, ge=1, description="Maps per image: one for each of the top k classes.")
    output_dir: Path = Field(Path("cam_results"), description="Where outputs are written.")
    max_pixels: int = Field(
        89_478_485, ge=1, description="Larger images are refused before decoding."
    )
    upsample: UpsampleMode = Field(
        UpsampleMode.aligned,
        description="aligned (each map cell at its receptive-field centre) or conventional "
        "(bilinear, align_corners=False, as published numbers are usually computed).",
    )

    @field_validator("colormap")
    @classmethod
    def _known_colormap(cls, value: str) -> str:
        from matplotlib import colormaps

        if value not in colormaps:
            raise ValueError(f"unknown matplotlib colormap {value!r}")
        return value


class Settings(BaseSettings):
    """All of camtool's settings. Build it with :func:`load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    model: ModelSettings = Field(default_factory=ModelSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    dataset: DatasetSettings = Field(default_factory=DatasetSettings)
    cam: CamSettings = Field(default_factory=CamSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """load_settings() merges every layer itself, so the model reads its arguments only."""
        return (init_settings,)


def drop_unset(values: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``values`` without ``None`` entries (recursively), so unset flags override nothing."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            nested = drop_unset(value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML settings file.

    Raises:
        ConfigError: the file is missing, unreadable or not valid TOML.
    """
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _read_env() -> dict[str, Any]:
    source = EnvSettingsSource(
        Settings, env_prefix=ENV_PREFIX, env_nested_delimiter="__", case_sensitive=False
    )
    try:
        return source()
    except SettingsError as exc:
        raise ConfigError(f"invalid {ENV_PREFIX}* environment variable: {exc}") from None


def _describe(exc: ValidationError, origin: str, labels: Mapping[str, str]) -> str:
    """Every problem of ``exc`` in one line, each named by its key path (or its label).

    pydantic's ``Value error,`` prefix is dropped, and the offending value is shown once.
    """
    problems = []
    for err in exc.errors():
        path = ".".join(str(part) for part in err["loc"])
        name = labels.get(path, path)
        if err["type"] == "extra_forbidden":
            problems.append(f"{name}: unknown key")
            continue
        message = str(err["msg"]).removeprefix("Value error, ")
        value = repr(err.get("input"))
        shown = "" if value in message else f" (got {value})"
        problems.append(f"{name}: {message}{shown}")
    return f"invalid settings{origin}: " + "; ".join(problems)


def leaf_paths(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted key paths of the set (non-``None``) leaves of nested ``values``."""
    paths: list[str] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            paths += leaf_paths(value, f"{path}.")
        elif value is not None:
            paths.append(path)
    return paths


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve the settings from every layer and validate them together.

    Args:
        config_file: a TOML file with any of the sections; ``None`` for none.
        overrides: values from command-line flags, nested by section; ``None`` values are ignored.
        labels: how the user wrote a key path of ``overrides`` (e.g. ``training.num_epochs`` ->
            ``--epochs``), used instead of the key path in error messages.

    Returns:
        The validated settings.

    Raises:
        ConfigError: listing every offending key path (exit code 2).
    """
    layers: dict[str, Any] = read_toml(config_file) if config_file is not None else {}
    layers = _deep_merge(layers, _read_env())
    layers = _deep_merge(layers, drop_unset(overrides or {}))
    origin = f" (from {config_file}, {ENV_PREFIX}* env vars and flags)" if config_file else ""
    try:
        settings = Settings(**layers)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin, labels or {})) from None
    shape = settings.model.input_shape
    if shape is not None and shape[1:] != [settings.dataset.img_size] * 2:
        raise ConfigError(
            f"invalid settings{origin}: model.input_shape {shape} disagrees with "
            f"{(labels or {}).get('dataset.img_size', 'dataset.img_size')} "
            f"{settings.dataset.img_size}"
        )
    return settings


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def settings_to_toml(settings: Settings) -> str:
    """Render settings as a TOML document that :func:`load_settings` reads back unchanged."""
    lines: list[str] = []
    for section, values in settings.model_dump(mode="json").items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def write_settings(directory: Path, settings: Settings) -> Path:
    """Save the resolved settings as :data:`SETTINGS_FILE` in ``directory`` (atomically)."""
    path = Path(directory) / SETTINGS_FILE
    atomic_write_text(path, settings_to_toml(settings))
    return path
