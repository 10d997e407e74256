"""batch-cam's inputs: finding the images, naming their outputs, taking one shard, reading them.

* A folder INPUT is walked recursively, following links but entering each real folder once;
  hidden names (``.``) are skipped and only image suffixes count (``IMAGE_SUFFIXES``). Any other
  INPUT is an input as it is (reading it says what is wrong).
* Outputs mirror the inputs under the output folder. A folder INPUT (resolved) or a file INPUT's
  resolved folder keeps its path from the current folder when inside it (``photos/a``,
  ``$PWD/photos/a`` and a link to it give ``DIR/photos/a/...``), else only its name; input folders
  with the same place get ``name``, ``name-2`` ... in the order given.
* An output is named by the input's stem; inputs of one folder sharing a stem (case-insensitive)
  use their full file name, with ``-2``, ``-3`` ... should names still clash.
* Input and output folders never nest (refused); a file inside the output folder is an error row.
* ``--shard I/N`` keeps the inputs whose output name hashes to ``I`` modulo ``N``."""

from __future__ import annotations

import hashlib
import os
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from camtool.data.images import IMAGE_SUFFIXES, load_image, preprocess_array
from camtool.errors import CamtoolError, ConfigError
from camtool.fsutil import unique_name
from camtool.process import worker_init
from camtool.textio import path_lines

__all__ = [
    "STDIN",
    "Decoded",
    "InputItem",
    "Reader",
    "assign_outputs",
    "discover_inputs",
    "find_inputs",
    "parse_shard",
    "read_images",
    "select_shard",
]

#: The INPUT that stands for "paths on stdin, one per line".
STDIN = "-"
_AHEAD = 2  # images read ahead per worker (as a DataLoader's prefetch_factor)


@dataclass(slots=True)
class InputItem:
    """One input (``path``: as given or found, normalised; the manifest's ``path``)."""

    path: str
    key: tuple[str, ...]  #: folder names then file name in the mirrored tree
    base: str = ""  #: output base in the output folder, POSIX, no suffix (:func:`assign_outputs`)
    error: str | None = None  #: a reason known before reading it, e.g. an unreadable folder


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def _anchor(real: str, cwd: str | None) -> tuple[str, ...]:
    """An INPUT's place in the mirror: its real path from ``cwd`` if inside it, else its name."""
    try:
        relative = os.path.relpath(real, cwd) if cwd is not None else os.pardir
    except ValueError:  # another drive (Windows)
        relative = os.pardir
    parts = Path(relative).parts
    if relative != os.curdir and parts and parts[0] != os.pardir:
        return tuple(parts)
    return (os.path.basename(real) or "root",)


class _Walker:
    """Collects inputs from INPUT arguments by the module docstring's rules."""

    def __init__(self, output_dir: Path) -> None:
        self.out_real = os.path.realpath(output_dir)
        try:
            self.cwd: str | None = os.path.realpath(os.getcwd())
        except OSError:  # the current folder no longer exists
            self.cwd = None
        self.out_shown = str(output_dir)
        self.visited: set[str] = set()
        self.found: dict[str, InputItem] = {}  # by path: each input once, in the order found
        self.roots: dict[tuple[str, ...], str] = {}

    def items(self, specs: Iterable[str]) -> list[InputItem]:
        for spec in specs:
            if os.path.isdir(spec):
                self._walk(spec)
            else:
                self._file(spec)
        return list(self.found.values())

    def _add(self, path: str, key: tuple[str, ...], error: str | None = None) -> None:
        self.found.setdefault(path, InputItem(path, key, error=error))

    def _file(self, spec: str) -> None:
        path = os.path.normpath(spec)
        parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
        error = f"is inside the output folder {self.out_shown}; not read (keep inputs out of it)"
        anchor = _anchor(os.path.join(parent, os.path.basename(path)), self.cwd)
        self._add(path, anchor, error if _inside(parent, self.out_real) else None)

    def _walk(self, spec: str) -> None:
        root = os.path.normpath(spec)
        real = os.path.realpath(root)
        if _inside(self.out_real, real) or _inside(real, self.out_real):
            nested = (
                f"output folder {self.out_shown} is inside input folder {spec}"
                if _inside(self.out_real, real)
                else f"input folder {spec} is inside the output folder {self.out_shown}"
            )
            raise CamtoolError(f"{nested}; choose an output folder (-o) outside the inputs")
        if real in self.visited:
            return
        self.visited.add(real)
        *where, name = _anchor(real, self.cwd)
        name = unique_name(name, lambda n: self.roots.get((*where, n), real) != real)
        key = (*where, name)
        self.roots[key] = real
        keys = {root: key}  # of each folder to walk

        def unreadable(exc: OSError) -> None:
            folder = exc.filename
            self._add(folder, keys[folder], f"cannot read folder ({exc.strerror or exc})")

        for folder, subfolders, files in os.walk(root, onerror=unreadable, followlinks=True):
            key = keys[folder]
            kept = []
            for name in sorted(subfolders):
                full = os.path.join(folder, name)
                sub_real = os.path.realpath(full)
                if name.startswith(".") or sub_real in self.visited:
                    continue
                if not _inside(sub_real, self.out_real):
                    self.visited.add(sub_real)
                    kept.append(name)
                    keys[full] = (*key, name)
            subfolders[:] = kept  # walked in name order, each real folder once
            for name in sorted(files):
                if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                    self._add(os.path.join(folder, name), (*key, name))


def discover_inputs(
    inputs: Sequence[str | os.PathLike[str]],
    output_dir: Path,
    *,
    stdin: Iterable[str | bytes] | None = None,
) -> list[InputItem]:
    """The inputs named by INPUT arguments (folders, files, ``-`` for the lines of ``stdin``), each
    once, folders walked in name order, without output names yet. Raises ``CamtoolError`` if an
    input folder and the output folder overlap, ``ConfigError`` for ``-`` with no ``stdin``."""

    def specs() -> Iterator[str]:  # ``-`` replaced by the lines of ``stdin``, read once
        used_stdin = False
        for raw in inputs:
            spec = os.fspath(raw)
            if spec == STDIN and not used_stdin:
                used_stdin = True
                if stdin is None:
                    raise ConfigError("'-' given but there is no stdin to read paths from")
                yield from path_lines(stdin, "stdin")
            elif spec and spec != STDIN:
                yield spec

    return _Walker(Path(output_dir)).items(specs())


def assign_outputs(items: Sequence[InputItem]) -> None:
    """Give every input a distinct output base (``item.base``) by the module docstring's rule."""

    def folder(item: InputItem) -> tuple[str, ...]:
        return tuple(part.casefold() for part in item.key[:-1])

    def stem(item: InputItem) -> str:
        return os.path.splitext(item.key[-1])[0] or item.key[-1]

    groups = Counter((folder(item), stem(item).casefold()) for item in items)
    used: set[tuple[tuple[str, ...], str]] = set()

    def name(item: InputItem) -> str:
        where = folder(item)
        wanted = stem(item) if groups[(where, stem(item).casefold())] == 1 else item.key[-1]
        chosen = unique_name(wanted, lambda n: (where, n.casefold()) in used)
        used.add((where, chosen.casefold()))
        return chosen

    for item in items:
        item.base = "/".join((*item.key[:-1], name(item)))


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``--shard I/N`` (``0 <= I < N``), or raise a ``ConfigError``."""
    index_text, slash, count_text = str(text).strip().partition("/")
    if not slash or not index_text.strip().isdigit() or not count_text.strip().isdigit():
        raise ConfigError(f"--shard must look like I/N, e.g. 0/4, got {text!r}")
    index, count = int(index_text), int(count_text)
    if count < 1:
        raise ConfigError(f"--shard {text}: N must be at least 1")
    if index >= count:
        raise ConfigError(f"--shard {text}: I must be between 0 and N-1 = {count - 1}")
    return index, count


def select_shard(items: Sequence[InputItem], index: int, count: int) -> list[InputItem]:
    """The inputs of shard ``index`` of ``count`` by a stable hash of ``item.base``."""

    def shard(item: InputItem) -> int:
        digest = hashlib.blake2b(item.base.encode("utf-8", "surrogateescape"), digest_size=8)
        return int.from_bytes(digest.digest(), "big") % count

    return [item for item in items if shard(item) == index]


def find_inputs(
    inputs: Sequence[str | os.PathLike[str]],
    output_dir: Path,
    *,
    stdin: Iterable[str | bytes] | None = None,
    shard: tuple[int, int] | None = None,
) -> list[InputItem]:
    """:func:`discover_inputs`, named, of ``shard`` ``(I, N)`` only; a ``CamtoolError`` if none."""
    items = discover_inputs(inputs, output_dir, stdin=stdin)
    if not items:
        named = ", ".join(os.fspath(i) for i in inputs) or "(nothing)"
        looked = ", ".join(sorted(IMAGE_SUFFIXES))
        raise CamtoolError(f"no images found in {named} (looked for {looked})")
    assign_outputs(items)
    return select_shard(items, *shard) if shard is not None else items


@dataclass
class Decoded:
    """One image ready to explain: ``original`` ``(H, W, 3)`` uint8 upright RGB, and ``tensor``
    ``(3, h, w)`` float32, the normalised model input."""

    original: np.ndarray
    tensor: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.original.nbytes + self.tensor.nbytes)


@dataclass(frozen=True)
class Reader:
    """Reads one image file into a :class:`Decoded` (shorter side ``short_side``, sides multiples
    of ``stride``), or returns why it cannot (a ``str``)."""

    short_side: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    max_pixels: int | None
    stride: int = 1

    def __call__(self, path: str) -> Decoded | str:
        try:
            image = load_image(Path(path), self.max_pixels)
            size, mean, std = self.short_side, self.mean, self.std
            tensor = preprocess_array(image, size, mean, std, stride=self.stride)
            return Decoded(np.asarray(image, dtype=np.uint8), tensor)
        except CamtoolError as exc:  # the manifest row has the path: the message need not
            return exc.message.removeprefix(f"{path}: ")
        except Exception as exc:  # a decoder bug or MemoryError: this file fails, not the run
            return f"cannot read image ({type(exc).__name__}: {exc})"


def read_images(
    reader: Callable[[str], Decoded | str], paths: Sequence[str], workers: int
) -> Generator[Decoded | str, None, None]:
    """``reader(path)`` for each of ``paths``, in order, in ``workers`` processes (0: in this one),
    at most ``2 * workers`` ahead. Closing it cancels the reads not started; workers ignore Ctrl-C.
    A ``CamtoolError`` if a worker died."""
    workers = max(0, min(workers, len(paths)))
    if not workers:
        yield from map(reader, paths)
        return
    pool = ProcessPoolExecutor(workers, initializer=worker_init(), initargs=(0,))
    todo = iter(paths)
    try:
        pending = deque(pool.submit(reader, path) for path in islice(todo, _AHEAD * workers))
        while pending:
            try:
                result = pending.popleft().result()
            except BrokenProcessPool:
                raise CamtoolError("reading images failed: a decoding worker died") from None
            pending.extend(pool.submit(reader, path) for path in islice(todo, 1))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
