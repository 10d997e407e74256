"""Archives: checksums, safe and atomic extraction of tar archives, the completion marker.

:func:`safe_extract` checks every member before anything is written (absolute paths, ``..``
components, links pointing outside the top folder, devices and FIFOs make the whole archive
refused; tarfile's ``data`` filter is applied as well where Python has it), extracts into a
temporary folder and renames the archive's single top folder into place, so an interrupted
extraction leaves no half-made folder. :func:`extract_dataset` also checks the ``train/`` and
``val/`` layout and writes the marker that :func:`find_complete` looks for, so a later run
recognises a complete dataset whatever its top folder is called. :func:`verify_checksum`
hashes a file in chunks.
Used by :mod:`camtool.data.download`; nothing here touches the network or prints.
"""

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
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from camtool.errors import CamtoolError, ConfigError, InputError
from camtool.fsutil import atomic_write_text
from camtool.textio import to_json
from camtool.version import __version__

__all__ = [
    "MARKER_NAME",
    "Checksum",
    "extract_archive",
    "extract_dataset",
    "file_digest",
    "find_complete",
    "is_complete",
    "safe_extract",
    "verify_checksum",
]

MARKER_NAME = ".camtool-complete"
"""File written into an extracted dataset folder once extraction has succeeded. JSON: the
``dataset`` name, ``source`` URL or path, ``archive`` file name, ``folder`` (the extracted top
folder), ``checksum`` and ``camtool`` version."""

_CHUNK = 1 << 20
_EXTRACT_PREFIX = ".camtool-extract-"
_OLD_PREFIX = ".camtool-old-"
_HEX_LENGTHS = {"sha256": 64, "md5": 32}
_HAS_DATA_FILTER = hasattr(tarfile, "data_filter")
_FILTER_ERRORS: tuple[type[Exception], ...] = (
    (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()
)


@dataclass(frozen=True)
class Checksum:
    """An expected digest of a file.

    Attributes:
        algo: ``"sha256"`` or ``"md5"``.
        hex: the expected digest as hexadecimal (case does not matter; stored lower case).
    """

    algo: str
    hex: str

    def __post_init__(self) -> None:
        """Check the algorithm and the digest's form.

        Raises:
            ConfigError: for an unknown algorithm or a digest that is not hex of the right length.
        """
        algo = self.algo.lower()
        digest = self.hex.strip().lower()
        if algo not in _HEX_LENGTHS:
            raise ConfigError(
                f"unsupported checksum algorithm {self.algo!r}; use one of: "
                + ", ".join(sorted(_HEX_LENGTHS))
            )
        length = _HEX_LENGTHS[algo]
        if len(digest) != length or re.fullmatch(r"[0-9a-f]+", digest) is None:
            raise ConfigError(
                f"{algo} checksum must be {length} hexadecimal characters, got {self.hex!r}"
            )
        object.__setattr__(self, "algo", algo)
        object.__setattr__(self, "hex", digest)

    def __str__(self) -> str:
        """Return ``algo:hex``."""
        return f"{self.algo}:{self.hex}"


def verify_checksum(path: Path, checksum: Checksum) -> None:
    """Check that a file has the expected digest.

    Args:
        path: the file to hash.
        checksum: the expected digest.

    Raises:
        InputError: if the file cannot be read.
        CamtoolError: if the digest differs; the message gives the expected and the actual digest.
    """
    got = file_digest(path, checksum.algo)
    if got != checksum.hex:
        raise CamtoolError(
            f"{checksum.algo} checksum mismatch for {path.name}: expected {checksum.hex}, got {got}"
        )


def file_digest(path: Path, algo: str) -> str:
    """Return the hex digest (``algo``: ``sha256`` or ``md5``) of a file, read in chunks.

    Raises:
        InputError: the file cannot be read.
    """
    try:
        hasher = hashlib.new(algo)
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                hasher.update(chunk)
        return hasher.hexdigest()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def is_complete(dataset_dir: Path) -> bool:
    """Tell whether a dataset folder was fully extracted by camtool.

    Args:
        dataset_dir: the extracted top folder, e.g. ``data/imagenette2-160``.

    Returns:
        True when the folder holds ``train/``, ``val/`` and the completion marker.
    """
    return (
        (dataset_dir / MARKER_NAME).is_file()
        and (dataset_dir / "train").is_dir()
        and (dataset_dir / "val").is_dir()
    )


def find_complete(data_dir: Path, folder: str, archive_name: str) -> Path | None:
    """The complete dataset in ``data_dir`` that ``archive_name`` was extracted to, if any.

    ``data_dir/folder`` is checked first; then every folder whose marker names
    ``archive_name`` (an archive from a mirror may hold a top folder of another name).
    """
    expected = Path(data_dir) / folder
    if is_complete(expected):
        return expected
    if not Path(data_dir).is_dir():
        return None
    for entry in sorted(Path(data_dir).iterdir()):
        if entry.is_dir() and is_complete(entry) and _marker(entry).get("archive") == archive_name:
            return entry
    return None


def _marker(folder: Path) -> dict[str, Any]:
    """The marker's JSON, or ``{}`` when it cannot be read."""
    try:
        doc = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def extract_dataset(
    archive: Path,
    data_dir: Path,
    dataset: str,
    source: str | None,
    checksum: Checksum | None,
) -> Path:
    """Extract a dataset archive into ``data_dir``; it must hold ``train/`` and ``val/``.

    The marker (:data:`MARKER_NAME`) is written into the top folder before it is renamed into
    place, recording ``dataset``, ``source``, the archive's name, the top folder's name and
    ``checksum``, so that :func:`find_complete` recognises the result later.

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

    return extract_archive(archive, data_dir, prepare=prepare)


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract a tar archive with a single top-level folder into ``dest``, safely and atomically.

    Every member is checked before anything is written: absolute paths, ``..`` components, links
    pointing outside the top-level folder, and device or FIFO members make the whole archive
    refused; tarfile's ``data`` filter is applied as well where Python has it. The archive is
    extracted into a temporary folder inside ``dest`` and its top folder is then renamed into
    place, replacing any folder of that name, so an interrupted extraction leaves no half-made
    folder behind.

    Args:
        archive: a tar archive (optionally gzip, bzip2 or xz compressed).
        dest: the folder to extract into; created if missing.

    Returns:
        The extracted top-level folder, ``dest / <top>``.

    Raises:
        InputError: if the archive cannot be read, is unsafe, or has no single top-level folder.
    """
    return extract_archive(Path(archive), Path(dest), prepare=None)


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Say why a member is unsafe to extract, or return None when it is fine."""
    name = member.name
    if member.isdev():
        return "is a device or FIFO"
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        return "has an unsupported type"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "has an absolute path"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return "climbs out of the target folder with '..'"
    if member.issym() or member.islnk():
        link = member.linkname
        kind = "symlink" if member.issym() else "hard link"
        if link.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", link):
            return f"is a {kind} to an absolute path ({link})"
        # A symlink is relative to its own folder, a hard link to the archive root.
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = PurePosixPath(posixpath.normpath(posixpath.join(base, link))).parts
        top = [p for p in parts if p != "."][:1]
        if not resolved or resolved[0] == ".." or resolved[:1] != tuple(top):
            return f"is a {kind} pointing outside its folder ({link})"
    return None


def _top_level(archive: Path, members: Iterable[tarfile.TarInfo]) -> str:
    """Check every member and return the archive's single top-level folder name."""
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
    """Delete temporary folders left by an extraction that was killed."""
    for entry in dest.iterdir():
        if entry.name.startswith((_EXTRACT_PREFIX, _OLD_PREFIX)) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def extract_archive(
    archive: Path, dest: Path, prepare: Callable[[Path], None] | None = None
) -> Path:
    """Extract ``archive`` into ``dest`` through a temporary folder (see :func:`safe_extract`).

    ``prepare(top)``, if given, runs on the extracted top folder before it is renamed into
    place; raising there extracts nothing.
    """
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
                if _HAS_DATA_FILTER:
                    tar.extractall(staging, members=members, filter="data")
                else:  # Python < 3.10.12 / 3.11.4: the checks in _top_level still apply
                    tar.extractall(staging, members=members)
        except tarfile.TarError as exc:
            if isinstance(exc, _FILTER_ERRORS):
                raise InputError(
                    f"refusing to extract {archive.name}: {exc}; nothing was extracted"
                ) from None
            raise InputError(f"cannot extract {archive.name}: {exc}") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"cannot extract {archive.name}: {exc}") from None
        top = staging / top_name
        if top.is_symlink() or not top.is_dir():
            raise InputError(f"{archive.name}: top-level entry {top_name!r} is not a folder")
        if prepare is not None:
            prepare(top)
        final = dest / top_name
        if final.exists() or final.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=_OLD_PREFIX, dir=dest))
            os.replace(final, old / top_name)
        os.replace(top, final)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_leftovers(dest)
