"""Download (urllib, resuming with ``Range``), verify and extract the Imagenette archives.

Nothing is printed: progress goes to a callback, failures raise
:class:`~camtool.errors.CamtoolError`. The archives' facts and their sources are in
:data:`camtool.core.imagenet.IMAGENETTE_ARCHIVES`.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from camtool.core.imagenet import IMAGENETTE_ARCHIVES, Checksum, ImagenetteArchive
from camtool.data.archive import _CHUNK, extract_dataset, find_complete, verify_checksum
from camtool.errors import CamtoolError, ConfigError, InputError
from camtool.fsutil import remove_stale_temps, writing
from camtool.process import folder_lock
from camtool.version import __version__

__all__ = ["ARCHIVES", "DownloadResult", "download_dataset"]

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar")

ProgressCallback = Callable[[int, int | None], None]
"""Called as ``progress(done_bytes, total_bytes)``; ``total_bytes`` is None when unknown."""

_MANUAL_HINT = "download {url} by hand and run `camtool download --archive FILE`"


@dataclass(frozen=True)
class DownloadResult:
    """What :func:`download_dataset` did: the extracted ``dataset_dir``, the ``archive`` used
    (None when ``already_present``), the bytes downloaded and the offset ``resumed_from``."""

    dataset_dir: Path
    archive: Path | None
    downloaded_bytes: int
    resumed_from: int
    already_present: bool


ARCHIVES: dict[str, ImagenetteArchive] = {a.name: a for a in IMAGENETTE_ARCHIVES}
"""The official Imagenette archives by dataset name, checked by sha256."""


def download_dataset(
    dataset: str = "imagenette-160",
    data_dir: Path = Path("data"),
    *,
    url: str | None = None,
    sha256: str | None = None,
    archive: Path | None = None,
    force: bool = False,
    progress: ProgressCallback | None = None,
    timeout: float = 30.0,
) -> DownloadResult:
    """Download (or take from ``archive``), verify and extract a dataset into ``data_dir``.

    The download goes to ``<filename>.part`` and resumes there after an interruption (HTTP
    Range; from scratch when the server ignores it). The checksum is verified before extraction
    (a mismatching download is deleted); a verified one is kept as ``<filename>``. With ``url``
    or ``archive`` the known checksum applies only to the official file name; ``sha256``
    overrides it. A failing call removes the folders it created.

    Args:
        dataset: a name in :data:`ARCHIVES`, or any name when ``url`` or ``archive`` is given.
        data_dir: the folder holding archives and extracted datasets.
        url: an http(s) URL (a mirror) instead of the official one.
        sha256: the expected sha256 of the archive (hex).
        archive: an archive downloaded by hand; nothing is downloaded.
        force: download (or extract) again even when the dataset is complete.
        progress: ``progress(done_bytes, total_bytes)``, counts including a resumed offset,
            ``total_bytes`` None when unknown.
        timeout: seconds to wait when connecting and for each read.

    Raises:
        ConfigError: an unknown dataset, a malformed sha256 or a URL that is not http(s).
        InputError: a missing or unsafe archive.
        CamtoolError: network and HTTP errors, an interrupted download, a checksum mismatch, or
            another ``camtool download`` holding the lock of ``data_dir``.
    """
    plan = _plan(dataset, url, sha256, archive)
    data_dir = Path(data_dir)
    if not force:
        done = find_complete(data_dir, plan.folder, plan.filename)
        if done is not None:
            return DownloadResult(done, None, 0, 0, already_present=True)
    with _remove_if_left_empty(data_dir), folder_lock(data_dir, "download"):
        remove_stale_temps(data_dir)  # of runs killed before (the .part file is kept: it resumes)
        if archive is None:
            return _from_url(data_dir, plan, force, progress, timeout)
        source = Path(archive)
        if not source.is_file():
            raise InputError(f"archive not found: {source}")
        if plan.checksum is not None:
            try:
                verify_checksum(source, plan.checksum)
            except CamtoolError as exc:
                raise InputError(f"{exc.message}; nothing was extracted") from None
        top = extract_dataset(source, data_dir, plan.name, str(source), plan.checksum)
        return DownloadResult(top, source, 0, 0, already_present=False)


@contextlib.contextmanager
def _remove_if_left_empty(data_dir: Path) -> Iterator[None]:
    """On an error, remove the folders up to ``data_dir`` that this run created, if empty."""
    created: list[Path] = []
    folder = data_dir.absolute()
    while not folder.exists() and folder != folder.parent:
        created.append(folder)
        folder = folder.parent
    try:
        yield
    except BaseException:
        for path in created:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()  # only succeeds when empty
        raise


def _from_url(
    data_dir: Path,
    plan: ImagenetteArchive,
    force: bool,
    progress: ProgressCallback | None,
    timeout: float,
) -> DownloadResult:
    """Download (or resume, or reuse a verified download), verify and extract."""
    assert plan.url is not None  # _plan gives a URL when no archive is given
    target = data_dir / plan.filename
    part = target.with_name(target.name + ".part")
    if force:
        target.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    if target.is_file() and plan.checksum is not None:
        try:
            verify_checksum(target, plan.checksum)
        except CamtoolError:
            target.unlink()  # a stale or damaged earlier download: fetch it again

    downloaded = resumed = 0
    if not target.is_file():
        downloaded, resumed = _fetch(plan.url, part, plan.size, timeout, progress)
        if plan.checksum is not None:
            try:
                verify_checksum(part, plan.checksum)
            except CamtoolError as exc:
                part.unlink(missing_ok=True)
                raise CamtoolError(
                    f"{exc.message}; the download was deleted and nothing was extracted"
                ) from None
        os.replace(part, target)
    top = extract_dataset(target, data_dir, plan.name, plan.url, plan.checksum)
    return DownloadResult(top, target, downloaded, resumed, already_present=False)


def _plan(
    dataset: str, url: str | None, sha256: str | None, archive: Path | None
) -> ImagenetteArchive:
    """The URL, file name, folder, size and checksum of one call."""
    spec = ARCHIVES.get(dataset)
    if spec is None and url is None and archive is None:
        raise ConfigError(
            f"unknown dataset {dataset!r}; choose one of {', '.join(sorted(ARCHIVES))}, "
            "or give --url or --archive"
        )
    if url is not None and urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise ConfigError(f"--url must be an http:// or https:// URL, got {url!r}")
    override = Checksum("sha256", sha256) if sha256 is not None else None
    if archive is not None:
        filename = Path(archive).name
    elif url is not None:
        filename = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
        if filename in ("", ".", "..") or "\\" in filename:
            filename = f"{dataset}.tgz"
    else:
        assert spec is not None
        filename = spec.filename
    if spec is None:
        return ImagenetteArchive(dataset, url, filename, _strip_suffix(filename), None, override)
    if override is None and filename == spec.filename:
        return replace(spec, url=url or spec.url)
    return ImagenetteArchive(spec.name, url or spec.url, filename, spec.folder, None, override)


def _strip_suffix(filename: str) -> str:
    """``filename`` without its archive suffix (``x.tgz`` -> ``x``)."""
    for suffix in _ARCHIVE_SUFFIXES:
        if filename.lower().endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    return Path(filename).stem or filename


def _network_error(url: str, reason: str) -> CamtoolError:
    reason = " ".join(reason.split())
    return CamtoolError(f"could not download {url}: {reason}; " + _MANUAL_HINT.format(url=url))


def _interrupted(url: str, done: int, total: int | None, reason: str) -> CamtoolError:
    of_total = f" of {total}" if total is not None else ""
    return CamtoolError(
        f"download of {url} interrupted after {done}{of_total} bytes ({reason}); "
        "run the same command again to resume, or " + _MANUAL_HINT.format(url=url)
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        inner = exc.reason
        return inner.strerror if isinstance(inner, OSError) and inner.strerror else str(inner)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``Content-Range`` as (first byte, total size); None for parts that are absent."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if match is None:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _fetch(
    url: str,
    part: Path,
    size: int | None,
    timeout: float,
    progress: ProgressCallback | None,
) -> tuple[int, int]:
    """Download ``url`` into ``part``, resuming it; (bytes received, offset resumed from)."""
    offset = part.stat().st_size if part.is_file() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is not None and offset == size and offset > 0:
        return 0, offset  # the part file is already whole; the checksum will tell

    for _attempt in range(2):
        headers = {"User-Agent": f"camtool/{__version__}", "Accept-Encoding": "identity"}
        if offset > 0:
            headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            status, content_range = exc.code, exc.headers.get("Content-Range")
            exc.close()
            if status == 416 and offset > 0:
                _, whole = _content_range(content_range)
                if whole == offset:
                    return 0, offset  # nothing left to fetch
                part.unlink(missing_ok=True)  # the part file does not fit: start over
                offset = 0
                continue
            raise _network_error(url, f"HTTP {status} {exc.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _network_error(url, _reason(exc)) from None

        with response:
            if response.status == 206 and offset > 0:
                start, total = _content_range(response.headers.get("Content-Range"))
                if start != offset:
                    part.unlink(missing_ok=True)  # not the range we asked for: start over
                    offset = 0
                    continue
            else:
                offset = 0  # a plain 200: the server ignored Range, so start over
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            received = _stream(response, part, offset, total, url, progress)
        return received, offset
    raise _network_error(url, "the server did not answer the Range request consistently")


def _stream(
    response: Any,
    part: Path,
    offset: int,
    total: int | None,
    url: str,
    progress: ProgressCallback | None,
) -> int:
    """Append the response body to ``part`` (truncating it when ``offset`` is 0)."""
    done = offset
    report = progress or (lambda _done, _total: None)
    report(done, total)
    with writing(part), open(part, "ab" if offset > 0 else "wb") as fh:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise _interrupted(url, done, total, _reason(exc)) from None
            if not chunk:
                break
            fh.write(chunk)
            done += len(chunk)
            report(done, total)
    if total is not None and done < total:
        raise _interrupted(url, done, total, "connection closed early")
    return done - offset
