"""``camtool config``: print the resolved settings."""

from __future__ import annotations

from pathlib import Path

from camtool.cli import _common as opts
from camtool.cli._app import command
from camtool.cli._common import resolve_settings
from camtool.cli._output import print_json


@command("config", short_help="Print the resolved settings (TOML, or JSON with --json).")
def config_cmd(config: Path | None = opts.CONFIG, json_out: bool = opts.JSON) -> None:
    """Print the settings as resolved from defaults, --config, and CAMTOOL_* env vars (as TOML).

    \b
    Examples:
      camtool config --config configs/imagenette.toml
      CAMTOOL_TRAINING__BATCH_SIZE=32 camtool config --json
    """
    settings = resolve_settings(config)
    if json_out:
        print_json(settings.model_dump(mode="json"), exact=True)
    else:
        from camtool.settings import settings_to_toml

        print(settings_to_toml(settings), end="")
