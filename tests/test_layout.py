"""The package's shape: no import cycle, no private name imported across modules, the library never importing the
command line, and no source file over 400 lines unless it says why."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "zoo"
#: the layers below the command line: none of them may import zoo.cli
LIBRARY = ("zoo.models", "zoo.data", "zoo.tasks", "zoo.callbacks", "zoo.figures")
LONGEST = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every zoo import in a file, at any depth, except under ``if TYPE_CHECKING:``."""
    found: list[tuple[str, list[str]]] = []
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names if alias.name.split(".")[0] == "zoo")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                ).strip(".")
            if base.split(".")[0] == "zoo":
                found.append((base, [alias.name for alias in node.names]))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def edges_of(name: str) -> set[str]:
    """The zoo modules ``name`` imports (a ``from package import module`` counts as importing the module)."""
    targets = set()
    for module, names in imports_of(MODULES[name]):
        submodules = {f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES}
        targets |= submodules or {module}
        if submodules and len(submodules) < len(names):
            targets.add(module)
    return {t for t in targets if t in MODULES and t != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as the modules on it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle() -> None:
    graph = {name: edges_of(name) for name in MODULES}
    assert find_cycle(graph) is None


def test_no_private_name_is_imported_across_modules() -> None:
    offenders = [
        f"{name}: from {module} import {n}"
        for name, path in MODULES.items()
        for module, names in imports_of(path)
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert offenders == []


@pytest.mark.parametrize("layer", LIBRARY)
def test_the_library_never_imports_the_command_line(layer: str) -> None:
    offenders = [
        f"{name} imports {module}"
        for name, path in MODULES.items()
        if name == layer or name.startswith(layer + ".")
        for module, _ in imports_of(path)
        if module == "zoo.cli" or module.startswith("zoo.cli.")
    ]
    assert offenders == []


def test_long_files_say_why() -> None:
    """A file over 400 lines must say in its opening docstring that its size is one concern."""
    long = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    unexplained = [
        f"{name} ({lines} lines)"
        for name, lines in long.items()
        if lines > LONGEST
        and "one concern" not in (ast.get_docstring(ast.parse(MODULES[name].read_text())) or "").lower()
    ]
    assert unexplained == []


def test_every_package_ships_in_the_wheel() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and newer
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {module_name(path) for path in PACKAGE.rglob("__init__.py")}
    assert packages <= listed, sorted(packages - listed)
