"""The package plan, checked from the code's own imports: layers, no cycle, no private reach-ins."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "camtool"

#: Each layer may import itself and the layers after it, never one before it.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"cli", "__main__"}),
    frozenset({"api", "demo"}),
    frozenset({"batch", "export", "evaluation", "training"}),
    frozenset({"explain"}),
    frozenset({"runtime"}),
    frozenset({"settings", "settings_sources"}),
    frozenset({"data"}),
    frozenset({"core"}),
    frozenset({"errors", "fsutil", "paths", "process", "textio", "version", "choices", "__init__"}),
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> Iterator[tuple[str, list[str]]]:
    """(module, names) of every import in the file, ``if TYPE_CHECKING:`` blocks included (an
    annotation's import is a dependency too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [alias.name for alias in node.names]


def _internal_edges(name: str) -> set[str]:
    """The camtool modules that ``name`` imports (importing a package counts as its __init__)."""
    edges = set()
    for module, names in _imports(MODULES[name]):
        if not module.startswith("camtool"):
            continue
        for imported in names:
            if f"{module}.{imported}" in MODULES:
                edges.add(f"{module}.{imported}")
        if module in MODULES and not all(f"{module}.{n}" in MODULES for n in names or ["?"]):
            edges.add(module)
    if name == "camtool":  # the package offers the API's three names, loaded on first use
        edges.discard("camtool.api")
    return edges - {name}


def _area(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(area: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if area in layer)


def test_every_area_has_a_layer() -> None:
    for name in MODULES:
        _layer(_area(name))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_run_down_the_layers(name: str) -> None:
    mine = _layer(_area(name))
    edges = _internal_edges(name)
    upward = [m for m in edges if _layer(_area(m)) < mine]
    assert not upward, f"{name} imports from a higher layer: {upward}"


def test_no_import_cycle() -> None:
    graph = {name: _internal_edges(name) for name in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_name_of_another_package(name: str) -> None:
    for module, names in _imports(MODULES[name]):
        if module.startswith("camtool") and _area(module) != _area(name):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{name} imports private {private} from {module}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_frameworks_stay_in_their_layer(name: str) -> None:
    """typer/rich only in the CLI; no module imports both torch and typer."""
    roots = {module.split(".")[0] for module, _ in _imports(MODULES[name])}
    if _area(name) != "cli":
        assert not roots & {"typer", "rich", "click"}, f"{name} imports a CLI framework"
    assert not {"torch", "typer"} <= roots, f"{name} imports both torch and typer"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_module_of_a_dependency(name: str) -> None:
    """``typer._click`` and the like change without notice between versions."""
    for module, _ in _imports(MODULES[name]):
        if not module.startswith(("camtool", "__future__")):
            private = [part for part in module.split(".") if part.startswith("_")]
            assert not private, f"{name} imports the private module {module}"


def test_every_package_file_is_declared_package_data() -> None:
    """A non-Python file in the package (the gallery's CSS and JS) ships only if pyproject.toml's
    ``[tool.setuptools.package-data]`` names it: a wheel without it would write broken pages."""
    from camtool.settings_sources import tomllib

    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    declared = pyproject["tool"]["setuptools"]["package-data"]
    assets = [
        path
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    ]
    assert assets, "the gallery's stylesheet and script are package files"
    for path in assets:
        package = ".".join(path.parent.relative_to(PACKAGE.parent).parts)
        globs = declared.get(package, [])
        assert any(path.match(glob) for glob in globs), f"{path} is not in package-data"
