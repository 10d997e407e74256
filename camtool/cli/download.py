"""``camtool download``: fetch, verify and extract Imagenette (or a mirror, or a local archive)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from camtool.cli._app import command
from camtool.cli._common import ConfigOpt, JsonOpt, QuietOpt, path_option, resolve_settings
from camtool.cli._output import err, print_json


class ArchiveName(str, Enum):
    imagenette_160 = "imagenette-160"
    imagenette_320 = "imagenette-320"
    imagenette = "imagenette"


@command(short_help="Fetch Imagenette, verify its checksum, extract it safely.")
def download(
    dataset: ArchiveName = typer.Option(
        ArchiveName.imagenette_160,
        "--dataset",
        "-d",
        metavar="NAME",
        help="Which Imagenette archive: imagenette-160, imagenette-320 or imagenette (full "
        "size) [default: imagenette-160].",
        show_default=False,
    ),
    data_dir: Path | None = path_option(
        "--data-dir", metavar="DIR", help="Where to put it [default: dataset.data_dir, data/]."
    ),
    url: str | None = typer.Option(
        None, "--url", metavar="URL", help="Download from this mirror instead."
    ),
    sha256: str | None = typer.Option(
        None, "--sha256", metavar="HEX", help="Expected sha256 of --url's file."
    ),
    archive: Path | None = path_option(
        "--archive", metavar="FILE", help="Use an archive you downloaded by hand."
    ),
    force: bool = typer.Option(False, "--force", help="Download and extract again."),
    config: Path | None = ConfigOpt,
    json_out: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Download Imagenette, verify its checksum and extract it safely; resumes if interrupted.

    \b
    Examples:
      camtool download --data-dir data/
      camtool download --archive ~/Downloads/imagenette2-160.tgz
    """
    settings = resolve_settings(config, {"dataset": {"data_dir": data_dir}})
    from camtool.cli._progress import ProgressReporter
    from camtool.data.download import download_dataset

    with ProgressReporter(
        "download", quiet=quiet, json_out=json_out, unit="bytes", fraction=0.1
    ) as reporter:

        def progress(done: int, total: int | None) -> None:
            reporter.update(done, total, f"downloading {dataset.value}")

        result = download_dataset(
            dataset.value,
            Path(settings.dataset.data_dir),
            url=url,
            sha256=sha256,
            archive=archive,
            force=force,
            progress=progress,
        )
    if json_out:
        print_json(
            {
                "dataset": dataset.value,
                "dataset_dir": str(result.dataset_dir),
                "archive": str(result.archive) if result.archive else None,
                "downloaded_bytes": result.downloaded_bytes,
                "resumed_from": result.resumed_from,
                "already_present": result.already_present,
            }
        )
        return
    if result.already_present:
        err.print(f"{dataset.value} is already complete in {result.dataset_dir}; nothing to do")
    else:
        err.print(f"{dataset.value} ready in {result.dataset_dir}")
    typer.echo(str(result.dataset_dir))
