"""The shape of the house, read from the imports: every arrow points down, no file cycles.

Levels, top to bottom: `app` (the surfaces) and `examples`; `projections` and `consumers`;
`ledger` (the domain, its application and the store adapter). Only the store adapters touch
eventsourcing's persistence or a database driver, and the decision code loads neither a
driver nor a web framework.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGES = ("ledger", "projections", "consumers", "app", "examples")
# What each package may import of the project's own packages.
ALLOWED = {
    "ledger": {"ledger"},
    "projections": {"ledger", "projections"},
    "consumers": {"ledger", "consumers"},
    "app": {"ledger", "projections", "consumers", "app"},
    "examples": {"ledger", "projections", "consumers", "examples"},
}
OUTER_LIBRARIES = {"litestar", "uvicorn", "aiokafka"}
PERSISTENCE = {"eventsourcing", "psycopg", "sqlite3"}
STORE_ADAPTERS = {"ledger/store.py", "ledger/store_privileges.py", "projections/database.py"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPOSITORY).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module name the file imports, at any depth (lazy imports count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _sources() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((REPOSITORY / package).rglob("*.py"))
    }


SOURCES = _sources()


def test_the_tree_has_every_package() -> None:
    found = {name.split(".")[0] for name in SOURCES}
    assert found == set(PACKAGES)
    assert "ledger.decisions" in SOURCES


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_imports_point_down(module: str) -> None:
    package = module.split(".", maxsplit=1)[0]
    path = SOURCES[module]
    relative = path.relative_to(REPOSITORY).as_posix()
    tops = {name.split(".")[0] for name in _imports(path)}
    upward = (tops & set(PACKAGES)) - ALLOWED[package]
    assert not upward, f"{relative} imports {sorted(upward)}"
    if package == "ledger":
        assert not tops & OUTER_LIBRARIES, f"{relative} imports {sorted(tops & OUTER_LIBRARIES)}"
    if package in {"ledger", "projections", "consumers"} and relative not in STORE_ADAPTERS:
        assert not tops & PERSISTENCE, f"{relative} imports {sorted(tops & PERSISTENCE)}"


def _file_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in SOURCES.items():
        targets = {name for name in _imports(path) if name in SOURCES and name != module}
        graph[module] = targets
    return graph


def test_no_two_files_import_each_other_in_any_circle() -> None:
    graph = _file_graph()
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    circles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_the_decisions_load_no_driver_and_no_web_framework() -> None:
    probe = (
        "import sys, ledger.decisions, ledger.book, ledger.risk; "
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    loaded = set(result.stdout.strip().split(","))
    assert "ledger" in loaded
    assert not loaded & (OUTER_LIBRARIES | {"psycopg", "eventsourcing", "projections"})
