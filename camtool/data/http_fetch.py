"""HTTP downloads that resume: stream a URL into a ``.part`` file, continuing with ``Range``.

Only the standard library is used (:mod:`urllib.request`). Every failure is one
:class:`~camtool.errors.CamtoolError` naming the URL and the way out (download it by hand);
an interrupted download keeps its ``.part`` file, which the next call continues.
"""

from __future__ import annotations

import http.client
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from camtool.errors import CamtoolError
from camtool.version import __version__

__all__ = ["ProgressCallback", "fetch"]

ProgressCallback = Callable[[int, int | None], None]
"""Called as ``progress(done_bytes, total_bytes)``; ``total_bytes`` is None when unknown."""

_CHUNK = 1 << 20
_MANUAL_HINT = "download {url} by hand and run `camtool download --archive FILE`"


def _network_error(url: str, reason: str) -> CamtoolError:
    reason = " ".join(reason.split())
    return CamtoolError(f"could not download {url}: {reason}; " + _MANUAL_HINT.format(url=url))


def _interrupted(url: str, done: int, total: int | None, reason: str) -> CamtoolError:
    """The error for a download cut short (the part file is kept for resuming)."""
    of_total = f" of {total}" if total is not None else ""
    return CamtoolError(
        f"download of {url} interrupted after {done}{of_total} bytes ({reason}); "
        "run the same command again to resume, or " + _MANUAL_HINT.format(url=url)
    )


def _reason(exc: BaseException) -> str:
    """A short description of a network exception."""
    if isinstance(exc, urllib.error.URLError):
        inner = exc.reason
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror
        return str(inner)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _open(url: str, offset: int, timeout: float) -> Any:
    """The response to a GET, with a Range header when ``offset`` > 0."""
    headers = {"User-Agent": f"camtool/{__version__}", "Accept-Encoding": "identity"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(request, timeout=timeout)


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``Content-Range`` as (first byte, total size); None for parts that are absent."""
    if not value:
        return None, None
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value)
    if match is None:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def fetch(
    url: str,
    part: Path,
    size: int | None,
    timeout: float,
    progress: ProgressCallback | None,
) -> tuple[int, int]:
    """Download ``url`` into ``part``, resuming it when it already holds some bytes; return
    (bytes received in this call, offset the download resumed from)."""
    offset = part.stat().st_size if part.is_file() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is not None and offset == size and offset > 0:
        return 0, offset  # the part file is already whole; the checksum will tell

    for _attempt in range(2):
        try:
            response = _open(url, offset, timeout)
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
            total: int | None
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
    if progress is not None:
        progress(done, total)
    try:
        with open(part, "ab" if offset > 0 else "wb") as fh:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _interrupted(url, done, total, _reason(exc)) from None
                if not chunk:
                    break
                fh.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except OSError as exc:
        raise CamtoolError(f"cannot write {part}: {exc.strerror or exc}") from None
    if total is not None and done < total:
        raise _interrupted(url, done, total, "connection closed early")
    return done - offset
