"""The package's shape, checked from its source: one installed name, arrows that point one way
(families -> core, never back, never sideways), no import circles, no function a newcomer cannot
read in one sitting."""
import ast
import importlib.metadata

import pytest
import tomllib
from conftest import REPO

# The folders and the names they are installed under (pyproject.toml's package-dir).
FOLDERS = {"common": "srlab", "mzsr": "srlab.mzsr", "asymsr": "srlab.asymsr", "classsr": "srlab.classsr"}
FAMILIES = ("srlab.mzsr", "srlab.asymsr", "srlab.classsr")
MAX_FUNCTION_LINES = 120


def modules() -> dict[str, ast.Module]:
    """Every module of the package by its installed name."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = ast.parse(path.read_text(), str(path))
    return found


def imported(module: str, tree: ast.Module, top_level_only: bool) -> set[str]:
    """The srlab modules ``module`` imports (at its top level only, or anywhere)."""
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: relative import (the package imports itself by name)"
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return {n for n in names if n == "srlab" or n.startswith("srlab.")}


def test_srlab_is_the_only_installed_name():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert all(p == "srlab" or p.startswith("srlab.") for p in project["packages"])
    assert all(p == "srlab" or p.startswith("srlab.") for p in project["package-dir"])
    assert importlib.metadata.distribution("srlab").read_text("top_level.txt").split() == ["srlab"]


def test_every_package_folder_is_installed():
    """A subpackage missing from pyproject's list works in a checkout and is absent from a wheel."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join([package, *init.parent.relative_to(REPO / folder).parts])
               for folder, package in FOLDERS.items() for init in (REPO / folder).rglob("__init__.py")}
    assert folders == listed


def test_no_import_circles():
    found = modules()
    graph = {m: {i for i in imported(m, tree, top_level_only=True) if i in found and i != m}
             for m, tree in found.items()}
    done, path = set(), []

    def visit(m):
        if m in path:
            pytest.fail(f"import circle: {' -> '.join(path[path.index(m):] + [m])}")
        if m in done:
            return
        path.append(m)
        for n in sorted(graph[m]):
            visit(n)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


def test_the_core_names_families_only_by_import_string_and_families_never_import_each_other():
    for module, tree in modules().items():
        family = next((f for f in FAMILIES if module == f or module.startswith(f + ".")), None)
        for name in imported(module, tree, top_level_only=False):
            target = next((f for f in FAMILIES if name == f or name.startswith(f + ".")), None)
            assert target is None or target == family, f"{module} imports {name}"


def test_no_function_is_longer_than_a_sitting():
    for module, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                assert lines <= MAX_FUNCTION_LINES, f"{module}.{node.name}: {lines} lines"
