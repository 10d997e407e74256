"""Developer sessions: ``nox -s tests``, ``lint``, ``typecheck`` and ``lowest``."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nox
import tomllib

nox.options.sessions = ["tests", "lint", "typecheck", "lowest"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (no network, CPU only)."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    session.run("ruff", "check", "camtool", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "camtool", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over the package and the benchmarks."""
    session.install("-e", ".[dev]")
    session.run("mypy", "camtool", "benchmarks")


#: Dependencies the lowest-versions session does not downgrade: their wheels are large (CUDA
#: builds are gigabytes), so it borrows the ones installed beside nox (see :func:`lowest`).
BORROWED = ("torch", "torchvision")


def lowest_pins(pyproject: Path, python: tuple[int, int]) -> list[str]:
    """``name==floor`` for every runtime dependency of ``pyproject`` but :data:`BORROWED`.

    Dependencies whose environment marker excludes ``python`` are left out; a dependency
    without a ``>=`` floor is an error (every floor must be stated, to be tested).
    """
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    pins: list[str] = []
    for spec in project["dependencies"]:
        req, _, marker = spec.partition(";")
        if marker and not _marker_holds(marker.strip(), python):
            continue
        name, sep, floor = req.partition(">=")
        if not sep:
            raise ValueError(f"dependency {spec!r} states no lower bound")
        if name.strip() not in BORROWED:
            pins.append(f"{name.strip()}=={floor.split(',')[0].strip()}")
    return pins


def _marker_holds(marker: str, python: tuple[int, int]) -> bool:
    """The ``python_version < 'X.Y'`` markers pyproject uses (others are refused)."""
    match = re.fullmatch(r"python_version\s*(<|>=)\s*['\"](\d+)\.(\d+)['\"]", marker)
    if match is None:
        raise ValueError(f"unsupported environment marker {marker!r}")
    bound = (int(match[2]), int(match[3]))
    return python < bound if match[1] == "<" else python >= bound


@nox.session(venv_backend="venv")
def lowest(session: nox.Session) -> None:
    """Install the lowest versions pyproject.toml admits and run the CLI with them.

    torch and torchvision are borrowed from the environment nox runs in (a ``.pth`` file puts
    its site-packages last on ``sys.path``), so every other dependency resolves to the
    session's own, pinned copy. camtool is installed without dependencies, from the tree.
    """
    python = tuple(
        int(part)
        for part in session.run(  # type: ignore[union-attr]
            "python", "-c", "import sys; print(*sys.version_info[:2])", silent=True
        ).split()
    )
    pins = lowest_pins(Path("pyproject.toml"), (python[0], python[1]))
    session.install(*pins)
    session.install("--no-deps", "-e", ".")
    borrowed = str(Path(importlib.util.find_spec("torch").origin).parents[1])  # type: ignore[arg-type,union-attr]
    site = session.run(
        "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", silent=True
    )
    Path(str(site).strip(), "zz_borrowed_torch.pth").write_text(borrowed + "\n", encoding="utf-8")
    session.run("python", ".ci/lowest_check.py", *pins)
