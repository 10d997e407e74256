"""camtool's settings, validated; precedence: flag > ``CAMTOOL_<SECTION>__<KEY>`` > TOML > default.

Sections mirror the reference lab's ``cam_config.yaml`` plus ``[runtime]`` and ``[cam]``. Every
problem is reported at once, by key path, as a :class:`~camtool.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

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

SETTINGS_FILE = "camtool-settings.toml"

MAX_CLASSES = 100_000  # most classes a model may have, and most maps per image

_PATH_FORBIDDEN = {"\0": "a NUL byte", "\n": "a newline", "\r": "a carriage return"}


def _plain_path(value: Path) -> Path:
    for char, name in _PATH_FORBIDDEN.items():
        if char in str(value):
            raise ValueError(f"a path cannot hold {name}")
    return value


PlainPath = Annotated[Path, AfterValidator(_plain_path)]
"""A path without NUL bytes or line breaks (they would break the files that name it)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSettings(_Section):
    """``[model]``: the network."""

    arch: str = "resnet18"  # a torchvision classifier with a pooling + linear head, or timm:<name>
    num_classes: int | None = Field(None, ge=1, le=MAX_CLASSES)  # None: from the data
    pretrained: bool = True  # start from torchvision's ImageNet weights
    output_stride: int | None = None  # 32 or 16; None: the arch's own

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

    learning_rate: float = Field(0.001, gt=0, le=10, allow_inf_nan=False)
    batch_size: int = Field(64, ge=1, le=65_536)
    num_epochs: int = Field(50, ge=1, le=100_000)
    weight_decay: float = Field(0.0001, ge=0, le=1, allow_inf_nan=False)
    momentum: float = Field(0.9, ge=0, lt=1, allow_inf_nan=False)  # sgd only
    checkpoint_dir: PlainPath = Path("checkpoints")
    log_every: int = Field(10, ge=1, le=1_000_000)  # batches between updates
    save_every: int = Field(2, ge=1, le=100_000)  # epochs between numbered checkpoints
    early_stopping_patience: int = Field(5, ge=0, le=100_000)  # 0: off
    optimizer: Optimizer = Optimizer.adam
    scheduler: Scheduler = Scheduler.reduce_lr
    seed: int = Field(0, ge=0, le=2**32 - 1)


class RuntimeSettings(_Section):
    """``[runtime]``: where and how every command runs."""

    device: DeviceName = DeviceName.auto
    workers: int = Field(2, ge=0, le=256)  # data-loading worker processes
    amp: bool = True  # mixed precision on CUDA (bf16 where supported); maps stay fp32
    batch_size: int = Field(64, ge=1, le=65_536)  # images per forward pass of eval, cam, batch-cam


class DatasetSettings(_Section):
    """``[dataset]``: where the images are and how big they are fed."""

    name: DatasetName = DatasetName.imagenette
    data_dir: PlainPath = Path("data")
    img_size: int = Field(160, ge=IMG_SIZE_RANGE[0], le=IMG_SIZE_RANGE[1])
    val_size: int | float = 0.1  # held out of train/: a count >= 1 or a fraction 0 < f < 1

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


class CamSettings(_Section):
    """``[cam]``: how maps are drawn."""

    alpha: float = Field(0.5, ge=0, le=1)  # heatmap opacity in the overlay
    colormap: str = "jet"  # any matplotlib colormap name
    topk: int = Field(1, ge=1, le=MAX_CLASSES)  # maps per image
    output_dir: PlainPath = Path("cam_results")
    max_pixels: int = Field(89_478_485, ge=1, le=2**31 - 1)  # larger images refused undecoded
    upsample: UpsampleMode = UpsampleMode.aligned

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
        """One line for each retired key the sources held."""
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
        return (init_settings,)


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve the settings from every layer and validate them together.

    Args:
        config_file: a TOML file with any of the sections; ``None`` for none.
        overrides: flag values nested by section; ``None`` values are ignored.
        flags: the flag of each key path (``{"training.batch_size": "--batch-size"}``), for errors.

    Raises:
        ConfigError: every offending key path, with the flag or env var it came from; a misspelt
            ``CAMTOOL_*`` variable.
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
    """Settings as TOML that :func:`load_settings` reads back unchanged (``None`` left out)."""
    import tomli_w

    return tomli_w.dumps(drop_unset(settings.model_dump(mode="json")))


def write_settings(directory: Path, settings: Settings) -> Path:
    """Save ``settings`` as :data:`SETTINGS_FILE` in ``directory``, atomically."""
    path = Path(directory) / SETTINGS_FILE
    atomic_write_text(path, settings_to_toml(settings))
    return path
