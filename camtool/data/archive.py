"""Checksums, safe and atomic extraction of tar archives, and the completion marker."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from camtool.core.imagenet import Checksum
from camtool.errors import CamtoolError, InputError
from camtool.fsutil import atomic_write_text
from camtool.textio import to_json
from camtool.version import __version__

__all__ = [
    "MARKER_NAME",
    "extract_dataset",
    "find_complete",
    "replace_folder",
    "safe_extract",
    "verify_checksum",
]

MARKER_NAME = ".camtool-complete"
"""Written into an extracted dataset once complete. JSON: ``dataset``, ``source`` (URL or path),
``archive`` (file name), ``folder``, ``checksum`` and ``camtool`` version."""

_CHUNK = 1 << 20
_EXTRACT_PREFIX = ".camtool-extract-"
_OLD_PREFIX = ".camtool-old-"
_ABSOLUTE = re.compile(r"[/\\]|[A-Za-z]:")


def verify_checksum(path: Path, checksum: Checksum) -> None:
    """Check that a file has the expected digest.

    Raises:
        InputError: the file cannot be read.
        CamtoolError: the digest differs; the message gives the expected and the actual digest.
    """
    try:
        hasher = hashlib.new(checksum.algo)
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                hasher.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    got = hasher.hexdigest()
    if got != checksum.hex:
        raise CamtoolError(
            f"{checksum.algo} checksum mismatch for {path.name}: expected {checksum.hex}, got {got}"
        )


def _is_complete(folder: Path) -> bool:
    marker, train, val = folder / MARKER_NAME, folder / "train", folder / "val"
    return marker.is_file() and train.is_dir() and val.is_dir()


def find_complete(data_dir: Path, folder: str, archive_name: str) -> Path | None:
    """The complete dataset (``train/``, ``val/``, marker) ``archive_name`` was extracted to, if
    any: ``data_dir/folder``, else a folder whose marker names ``archive_name`` (mirrors)."""
    data_dir = Path(data_dir)
    if _is_complete(data_dir / folder):
        return data_dir / folder
    for entry in sorted(data_dir.iterdir()) if data_dir.is_dir() else []:
        if not _is_complete(entry):
            continue
        try:
            doc = json.loads((entry / MARKER_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("archive") == archive_name:
            return entry
    return None


def extract_dataset(
    archive: Path,
    data_dir: Path,
    dataset: str,
    source: str | None,
    checksum: Checksum | None,
) -> Path:
    """:func:`safe_extract` a dataset holding ``train/`` and ``val/``, with its marker
    (:data:`MARKER_NAME`) written before it is renamed into place.

    Raises:
        InputError: an unsafe or unreadable archive, or one without ``train/`` and ``val/``.
    """

    def prepare(top: Path) -> None:
        missing = [name for name in ("train", "val") if not (top / name).is_dir()]
        if missing:
            raise InputError(
                f"{archive.name} is not an Imagenette-style archive: {top.name}/ has no "
                + " or ".join(f"{name}/" for name in missing)
                + " folder; nothing was extracted"
            )
        marker = {
            "dataset": dataset,
            "source": source,
            "archive": archive.name,
            "folder": top.name,
            "checksum": str(checksum) if checksum is not None else None,
            "camtool": __version__,
        }
        atomic_write_text(top / MARKER_NAME, to_json(marker) + "\n")

    return safe_extract(archive, data_dir, prepare=prepare)


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a member is unsafe to extract, or None."""
    name = member.name
    if member.isdev():
        return "is a device or FIFO"
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        return "has an unsupported type"
    if _ABSOLUTE.match(name):
        return "has an absolute path"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return "climbs out of the target folder with '..'"
    if member.issym() or member.islnk():
        link = member.linkname
        kind = "symlink" if member.issym() else "hard link"
        if _ABSOLUTE.match(link):
            return f"is a {kind} to an absolute path ({link})"
        # A symlink is relative to its own folder, a hard link to the archive root.
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = PurePosixPath(posixpath.normpath(posixpath.join(base, link))).parts
        top = [p for p in parts if p != "."][:1]
        if not resolved or resolved[0] == ".." or resolved[:1] != tuple(top):
            return f"is a {kind} pointing outside its folder ({link})"
    return None


def _top_level(archive: Path, members: Iterable[tarfile.TarInfo]) -> str:
    """Check every member; the archive's single top-level folder name."""
    tops: set[str] = set()
    for member in members:
        problem = _member_problem(member)
        if problem is not None:
            raise InputError(
                f"refusing to extract {archive.name}: member {member.name!r} {problem}; "
                "nothing was extracted"
            )
        parts = [p for p in PurePosixPath(member.name).parts if p != "."]
        if not parts:
            if not member.isdir():
                raise InputError(f"refusing to extract {archive.name}: a member has no name")
            continue
        if len(parts) == 1 and not member.isdir():
            raise InputError(
                f"{archive.name} must hold a single top-level folder, "
                f"but {parts[0]!r} is a file at its top level"
            )
        tops.add(parts[0])
    if len(tops) != 1:
        found = ", ".join(sorted(tops)[:5]) or "nothing"
        raise InputError(
            f"{archive.name} must hold a single top-level folder, found {len(tops)}: {found}"
        )
    return tops.pop()


def _remove_leftovers(dest: Path) -> None:
    for entry in dest.iterdir():
        if entry.name.startswith((_EXTRACT_PREFIX, _OLD_PREFIX)) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def replace_folder(new: Path, final: Path) -> None:
    """Rename folder ``new`` to ``final``, moving aside and deleting what was there."""
    if not (final.exists() or final.is_symlink()):
        os.replace(new, final)
        return
    old = Path(tempfile.mkdtemp(prefix=_OLD_PREFIX, dir=final.parent))
    os.replace(final, old / final.name)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)


def safe_extract(archive: Path, dest: Path, prepare: Callable[[Path], None] | None = None) -> Path:
    """Extract a tar archive (optionally gzip, bzip2 or xz) with a single top-level folder into
    ``dest`` (created if missing), safely and atomically; return ``dest / <top>``.

    Absolute paths, ``..``, links leaving the top folder, devices and FIFOs refuse the whole
    archive before anything is written (tarfile's ``data`` filter backs this up). ``prepare``,
    if given, runs on the extracted top folder before it is renamed into place; raising there
    extracts nothing.

    Raises:
        InputError: the archive cannot be read, is unsafe, or has no single top-level folder.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise InputError(f"archive not found: {archive}")
    dest.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(dest)
    staging = Path(tempfile.mkdtemp(prefix=_EXTRACT_PREFIX, dir=dest))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                top_name = _top_level(archive, members)
                tar.extraction_filter = getattr(tarfile, "data_filter", None)
                tar.extractall(staging, members=members)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            if isinstance(exc, getattr(tarfile, "FilterError", ())):
                raise InputError(
                    f"refusing to extract {archive.name}: {exc}; nothing was extracted"
                ) from None
            raise InputError(f"cannot extract {archive.name}: {exc}") from None
        top = staging / top_name
        if top.is_symlink() or not top.is_dir():
            raise InputError(f"{archive.name}: top-level entry {top_name!r} is not a folder")
        if prepare is not None:
            prepare(top)
        replace_folder(top, dest / top_name)
        return dest / top_name
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_leftovers(dest)
