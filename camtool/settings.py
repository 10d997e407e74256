"""camtool's settings: one validated model, resolved from defaults, a TOML file, env vars and flags.

The sections mirror the reference lab's ``cam_config.yaml`` (``[model]``, ``[training]``,
``[dataset]``, same key names) plus ``[runtime]`` (device, workers, precision and inference
batch size, for every command) and ``[cam]``. Precedence, highest first::

    command-line flag  >  CAMTOOL_<SECTION>__<KEY> env var  >  --config FILE.toml  >  defaults

A flag the user did not give is ``None`` and is dropped before merging, so it overrides nothing.
Every problem (unknown key, wrong type, value out of range) is reported at once, by key path, as a
:class:`~camtool.errors.ConfigError`. A retired key (:mod:`camtool.settings_sources`) still
loads: it moves to its new place, or is dropped when it never had an effect;
:attr:`Settings.notes` says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from camtool.choices import DatasetName, DeviceName, Optimizer, Scheduler, UpsampleMode
from camtool.core.imagenet import IMG_SIZE_RANGE
from camtool.errors import ConfigError
from camtool.fsutil import atomic_write_text
from camtool.settings_sources import (
    ENV_PREFIX,
    deep_merge,
    describe,
    drop_unset,
    env_settings_names,
    read_env,
    read_toml,
    retire_keys,
)

__all__ = [
    "SETTINGS_FILE",
    "CamSettings",
    "DatasetSettings",
    "ModelSettings",
    "RuntimeSettings",
    "Settings",
    "TrainingSettings",
    "load_settings",
    "settings_to_toml",
    "write_settings",
]

#: The file, beside every output, that records the settings it was made with.
SETTINGS_FILE = "camtool-settings.toml"

#: Most classes a model may have, and most maps per image (``topk``).
MAX_CLASSES = 100_000

_PATH_FORBIDDEN = {"\0": "a NUL byte", "\n": "a newline", "\r": "a carriage return"}


def _plain_path(value: Path) -> Path:
    """Refuse a path holding NUL or a line break (never a real folder; a pasting accident)."""
    for char, name in _PATH_FORBIDDEN.items():
        if char in str(value):
            raise ValueError(f"a path cannot hold {name}")
    return value


class _Section(BaseModel):
    """A settings section: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSettings(_Section):
    """``[model]``: the network."""

    arch: str = Field(
        "resnet18",
        description="A torchvision classifier with a pooling + linear head (resnet18, "
        "densenet121, efficientnet_b0, mobilenet_v2 ...) or timm:<name>.",
    )
    num_classes: int | None = Field(
        None, ge=1, le=MAX_CLASSES, description="Classes of the head; by default from the data."
    )
    pretrained: bool = Field(True, description="Start from torchvision's ImageNet weights.")
    output_stride: int | None = Field(
        None, description="32 or 16 (the last stage at full res); unset: the arch's own."
    )

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str) -> str:
        from camtool.core.archs import arch_problem

        problem = arch_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _stride_fits_arch(self) -> ModelSettings:
        from camtool.core.archs import arch_problem

        problem = arch_problem(self.arch, self.output_stride)
        if problem is not None:
            raise ValueError(problem)
        return self

    @field_validator("output_stride")
    @classmethod
    def _stride(cls, value: int | None) -> int | None:
        if value not in (None, 16, 32):
            raise ValueError("must be 32 or 16")
        return value


class TrainingSettings(_Section):
    """``[training]``: the optimisation loop."""

    learning_rate: float = Field(0.001, gt=0, le=10, description="Initial learning rate.")
    batch_size: int = Field(64, ge=1, le=65_536, description="Images per training step.")
    num_epochs: int = Field(50, ge=1, le=100_000, description="Maximum number of epochs.")
    weight_decay: float = Field(0.0001, ge=0, le=1, description="L2 weight decay.")
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum (sgd only).")
    checkpoint_dir: Path = Field(Path("checkpoints"), description="Where checkpoints are written.")
    log_every: int = Field(10, ge=1, le=1_000_000, description="Batches between updates.")
    save_every: int = Field(2, ge=1, le=100_000, description="Epochs between numbered ckpts.")
    early_stopping_patience: int = Field(
        5, ge=0, le=100_000, description="Epochs without gain; 0 = off."
    )
    optimizer: Optimizer = Field(Optimizer.adam, description="adam, adamw or sgd.")
    scheduler: Scheduler = Field(Scheduler.reduce_lr, description="reduce_lr or cosine.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of shuffling, augmentation, init.")

    @field_validator("learning_rate", "weight_decay", "momentum")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    _checkpoint_dir = field_validator("checkpoint_dir")(_plain_path)


class RuntimeSettings(_Section):
    """``[runtime]``: where and how every command runs (train, eval, cam, batch-cam, demo)."""

    device: DeviceName = Field(DeviceName.auto, description="auto, cpu, cuda or mps.")
    workers: int = Field(2, ge=0, le=256, description="Data-loading worker processes.")
    amp: bool = Field(
        True, description="Mixed precision on CUDA (bf16 where supported); maps stay fp32."
    )
    batch_size: int = Field(
        64, ge=1, le=65_536, description="Images per forward pass of eval, cam and batch-cam."
    )


class DatasetSettings(_Section):
    """``[dataset]``: where the images are and how big they are fed."""

    name: DatasetName = Field(DatasetName.imagenette, description="imagenette or folder.")
    data_dir: Path = Field(Path("data"), description="Folder holding the dataset.")
    img_size: int = Field(
        160,
        ge=IMG_SIZE_RANGE[0],
        le=IMG_SIZE_RANGE[1],
        description="Side the images are resized to.",
    )
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
        if isinstance(value, int) and 1 <= value <= 100_000_000:
            return value
        if isinstance(value, float) and 0 < value < 1:
            return value
        raise ValueError(
            "must be a count from 1 to 100000000 or a fraction between 0 and 1 (e.g. 0.1)"
        )

    _data_dir = field_validator("data_dir")(_plain_path)


class CamSettings(_Section):
    """``[cam]``: how maps are drawn."""

    alpha: float = Field(0.5, ge=0, le=1, description="Heatmap opacity in the overlay.")
    colormap: str = Field("jet", description="Any matplotlib colormap name.")
    topk: int = Field(
        1, ge=1, le=MAX_CLASSES, description="Maps per image: one for each of the top k classes."
    )
    output_dir: Path = Field(Path("cam_results"), description="Where outputs are written.")
    max_pixels: int = Field(
        89_478_485, ge=1, le=2**31 - 1, description="Larger images are refused before decoding."
    )
    upsample: UpsampleMode = Field(
        UpsampleMode.aligned,
        description="aligned (each map cell at its receptive-field centre) or conventional "
        "(bilinear, align_corners=False, as published numbers are usually computed).",
    )

    _output_dir = field_validator("output_dir")(_plain_path)

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
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    dataset: DatasetSettings = Field(default_factory=DatasetSettings)
    cam: CamSettings = Field(default_factory=CamSettings)
    _notes: list[str] = PrivateAttr(default_factory=list)

    @property
    def notes(self) -> list[str]:
        """One line for each retired key the sources held (``settings_sources.RETIRED``)."""
        return self._notes

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


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve the settings from every layer and validate them together.

    Args:
        config_file: a TOML file with any of the sections; ``None`` for none.
        overrides: values from command-line flags, nested by section; ``None`` values are ignored.
        flags: the flag that sets each key path (``{"training.batch_size": "--batch-size"}``),
            named in errors about a value given by that flag.

    Returns:
        The validated settings.

    Raises:
        ConfigError: listing every offending key path, with the flag or environment variable
            it came from (exit code 2); a misspelt ``CAMTOOL_*`` variable.
    """
    sections = {name: field.annotation for name, field in Settings.model_fields.items()}
    env = env_settings_names(sections)
    notes: list[str] = []
    layers = retire_keys(read_toml(config_file), notes) if config_file is not None else {}
    layers = deep_merge(layers, retire_keys(read_env(Settings), notes))
    given = retire_keys(drop_unset(overrides or {}), notes)
    layers = deep_merge(layers, given)
    origin = f" (from {config_file}, {ENV_PREFIX}* env vars and flags)" if config_file else ""
    used_flags = {
        key: flag
        for key, flag in (flags or {}).items()
        if key.partition(".")[2] in given.get(key.partition(".")[0], {})
    }
    try:
        settings = Settings(**layers)
    except ValidationError as exc:
        raise ConfigError(describe(exc, origin, used_flags, env)) from None
    settings.notes.extend(dict.fromkeys(notes))
    from camtool.core.archs import family_of

    family = family_of(settings.model.arch)
    if family is not None and settings.dataset.img_size < family.min_size:
        raise ConfigError(
            f"invalid settings{origin}: model.arch {settings.model.arch} needs images of at least "
            f"{family.min_size} px, dataset.img_size is {settings.dataset.img_size}"
        )
    return settings


def settings_to_toml(settings: Settings) -> str:
    """Render settings as a TOML document that :func:`load_settings` reads back unchanged
    (unset optional values, ``None``, are left out: TOML has no null)."""
    import tomli_w

    return tomli_w.dumps(drop_unset(settings.model_dump(mode="json")))


def write_settings(directory: Path, settings: Settings) -> Path:
    """Save the resolved settings as :data:`SETTINGS_FILE` in ``directory`` (atomically)."""
    path = Path(directory) / SETTINGS_FILE
    atomic_write_text(path, settings_to_toml(settings))
    return path
