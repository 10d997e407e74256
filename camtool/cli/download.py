"""``camtool download``: fetch, verify and extract Imagenette (or a mirror, or a local archive)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from camtool.cli import _common as opts
from camtool.cli._app import command
from camtool.cli._common import flag, option, resolve_settings
from camtool.cli._output import err, print_json
from camtool.core.imagenet import IMAGENETTE_ARCHIVES

ArchiveName = Enum(  # type: ignore[misc]  # members from the archive table
    "ArchiveName", [(a.name, a.name) for a in IMAGENETTE_ARCHIVES], type=str
)


@command(short_help="Fetch Imagenette, verify its checksum, extract it safely.")
def download(
    dataset: ArchiveName = option(
        "--dataset",
        "-d",
        default=ArchiveName("imagenette-160"),
        metavar="NAME",
        help="Which Imagenette archive: imagenette-160, imagenette-320 or imagenette (full "
        "size) [default: imagenette-160].",
        show_default=False,
    ),
    data_dir: Path | None = option(
        "--data-dir", metavar="DIR", help="Where to put it [default: dataset.data_dir, data/]."
    ),
    url: str | None = option("--url", metavar="URL", help="Download from this mirror instead."),
    sha256: str | None = option("--sha256", metavar="HEX", help="Expected sha256 of --url's file."),
    archive: Path | None = option(
        "--archive", metavar="FILE", help="Use an archive you downloaded by hand."
    ),
    force: bool = flag("--force", help="Download and extract again."),
    config: Path | None = opts.CONFIG,
    json_out: bool = opts.JSON,
    quiet: bool = opts.QUIET,
) -> None:
    """Download Imagenette, verify its checksum and extract it safely; resumes if interrupted.

    \b
    Examples:
      camtool download --data-dir data/
      camtool download --archive ~/Downloads/imagenette2-160.tgz
    """
    settings = resolve_settings(config, dataset=dict(data_dir=data_dir))
    name = dataset.value
    from camtool.cli._progress import ProgressReporter
    from camtool.data.download import download_dataset

    with ProgressReporter(
        "download", quiet=quiet, json_out=json_out, unit="bytes", fraction=0.1
    ) as reporter:
        result = download_dataset(
            name,
            Path(settings.dataset.data_dir),
            url=url,
            sha256=sha256,
            archive=archive,
            force=force,
            progress=lambda done, total: reporter.update(done, total, f"downloading {name}"),
        )
    if json_out:
        print_json({"dataset": name, **vars(result)})  # the DownloadResult fields
        return
    if result.already_present:
        err.print(f"{name} is already complete in {result.dataset_dir}; nothing to do")
    else:
        err.print(f"{name} ready in {result.dataset_dir}")
    typer.echo(str(result.dataset_dir))
