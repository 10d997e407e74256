"""The raw layers :func:`camtool.settings.load_settings` merges (TOML, ``CAMTOOL_*``, flags),
retired keys, and error messages naming where the user gave each value."""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource

from camtool.errors import ConfigError
from camtool.textio import decode_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "ENV_PREFIX",
    "RETIRED",
    "deep_merge",
    "describe",
    "drop_unset",
    "env_settings_names",
    "read_env",
    "read_toml",
    "retire_keys",
]

ENV_PREFIX = "CAMTOOL_"

#: Keys of earlier releases: where each moved (``None``: dropped, it had no effect).
RETIRED: dict[str, str | None] = {
    "model.name": None,
    "model.input_shape": None,
    "model.residual": None,
    "training.device": "runtime.device",
    "training.workers": "runtime.workers",
    "training.amp": "runtime.amp",
}


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


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def retire_keys(values: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    """``values`` with each :data:`RETIRED` key moved (yielding to its new key) or dropped; one
    line per retired key found is appended to ``notes``."""
    out = {key: dict(v) if isinstance(v, Mapping) else v for key, v in values.items()}
    for old, new in RETIRED.items():
        section, _, key = old.partition(".")
        if not isinstance(out.get(section), dict) or key not in out[section]:
            continue
        value = out[section].pop(key)
        if new is None:
            notes.append(f"{old} is retired and has no effect; remove it")
            continue
        new_section, _, new_key = new.partition(".")
        out.setdefault(new_section, {}).setdefault(new_key, value)
        notes.append(f"{old} is now {new}; rename it")
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML settings file (UTF-8, a leading BOM dropped).

    Raises:
        ConfigError: the file is missing, unreadable, not UTF-8 or not valid TOML.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror})") from None
    refusal = (
        "config file {source} is not UTF-8 (bad byte at offset {offset}); TOML files are UTF-8:"
    )
    text = decode_text(data, str(path), utf16=False, refusal=refusal, error=ConfigError)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def env_settings_names(
    sections: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> dict[tuple[str, str], str]:
    """The ``CAMTOOL_<SECTION>__<KEY>`` variables set, by ``(section, key)``, all checked.

    Args:
        sections: section name -> its pydantic model class.
        environ: the environment (default ``os.environ``).

    Raises:
        ConfigError: a ``__`` variable naming an unknown section or key, or a
            ``CAMTOOL_<SECTION>_<KEY>`` typo (other ``CAMTOOL_*`` variables pass).
    """
    environ = os.environ if environ is None else environ
    found: dict[tuple[str, str], str] = {}
    for var in sorted(environ):
        upper = var.upper()
        if not upper.startswith(ENV_PREFIX):
            continue
        rest = upper[len(ENV_PREFIX) :].lower()
        if "__" not in rest:
            typo = next((s for s in sections if rest.startswith(f"{s}_")), None)
            if typo is not None:
                raise ConfigError(
                    f"environment variable {var}: write {ENV_PREFIX}{typo.upper()}__"
                    f"{rest[len(typo) + 1 :].upper()} (two underscores after the section)"
                )
            continue
        section, _, key = rest.partition("__")
        if section not in sections:
            close = difflib.get_close_matches(section, list(sections), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(
                f"environment variable {var}: unknown section {section!r}{hint}; "
                f"choose from {', '.join(sections)}"
            )
        keys = list(getattr(sections[section], "model_fields", {}))
        if key not in keys and f"{section}.{key}" not in RETIRED:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f"did you mean {var[: -len(key)]}{close[0].upper()}?" if close else ""
            raise ConfigError(
                f"environment variable {var}: [{section}] has no key {key!r}; "
                + (hint or f"its keys are {', '.join(keys)}")
            )
        found[(section, key)] = var
    return found


def read_env(settings_cls: type[BaseSettings]) -> dict[str, Any]:
    """The ``CAMTOOL_<SECTION>__<KEY>`` values, nested by section.

    Raises:
        ConfigError: a value that cannot be parsed (e.g. a list that is not JSON).
    """
    source = EnvSettingsSource(
        settings_cls, env_prefix=ENV_PREFIX, env_nested_delimiter="__", case_sensitive=False
    )
    try:
        return source()
    except ValueError as exc:  # pydantic-settings' SettingsError is one
        raise ConfigError(f"invalid {ENV_PREFIX}* environment variable: {exc}") from None


def describe(
    exc: ValidationError,
    origin: str,
    flags: Mapping[str, str],
    env: Mapping[tuple[str, str], str],
) -> str:
    """Every problem of ``exc`` in one line, each named by the flag, key path or env var."""
    problems = []
    for err in exc.errors():
        extra = err["type"] == "extra_forbidden"
        message = "unknown key" if extra else str(err["msg"]).removeprefix("Value error, ")
        value = repr(err.get("input"))
        shown = "" if extra or value in message else f" (got {value})"
        loc = err["loc"]
        name = ".".join(str(part) for part in loc)
        var = env.get((str(loc[0]), str(loc[1]))) if len(loc) >= 2 else None
        name = f"{name} ({var})" if var else name
        name = flags.get(".".join(str(part) for part in loc[:2]), name)
        problems.append(f"{name}: {message}{shown}")
    return f"invalid settings{origin}: " + "; ".join(problems)
