"""The layering rules of the source tree, read from the code itself.

* The framework (``corenet/`` less ``corenet/proxy/``) imports neither the
  proxy application nor the protocol and routing plugins: not at run time,
  not for type checking, not by name through ``importlib``.  Three modules
  may name the layers above them as strings, and only those: the
  ``python -m corenet`` entry point and two deprecated aliases.
* No import cycle anywhere, type-checking imports included.
* No framework or proxy module over 600 lines.
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Where each installed package lives in the repository (pyproject's package-dir).
PACKAGE_DIRS = {
    "corenet": ROOT / "corenet",
    "corenet.protocols": ROOT / "protocols",
    "corenet.plugins": ROOT / "plugins",
}
UPPER = ("corenet.proxy", "corenet.protocols", "corenet.plugins")
NAMED_BY_STRING = {
    "corenet/__main__.py": {"corenet.proxy"},
    "corenet/testing/strategies.py": {"corenet.protocols.redis.strategies"},
    "corenet/testing/memcache_strategies.py": {"corenet.protocols.memcache.strategies"},
}
MAX_LINES = 600
_MODULE_NAME = re.compile(r"corenet(\.\w+)+")


def _modules() -> dict[str, pathlib.Path]:
    found: dict[str, pathlib.Path] = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if node.level:
        base = importer.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        module = ".".join(base + ([node.module] if node.module else []))
    return module


def imports_of(name: str) -> set[str]:
    """Every corenet module ``name`` imports, anywhere in its source."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", node, name, is_package)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in MODULES else base)
    return {t for t in targets if t in MODULES}


def _framework() -> list[str]:
    return sorted(n for n in MODULES if n.startswith("corenet") and not n.startswith(UPPER))


def _rel(name: str) -> str:
    return MODULES[name].relative_to(ROOT).as_posix()


@pytest.mark.parametrize("name", _framework())
def test_the_framework_imports_nothing_above_it(name: str) -> None:
    upward = sorted(t for t in imports_of(name) if t.startswith(UPPER))
    assert upward == [], f"{_rel(name)} imports {upward}"


@pytest.mark.parametrize("name", _framework())
def test_the_framework_names_nothing_above_it(name: str) -> None:
    tree = ast.parse(MODULES[name].read_text())
    named = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _MODULE_NAME.fullmatch(node.value)
        and node.value.startswith(UPPER)
    }
    assert named <= NAMED_BY_STRING.get(_rel(name), set()), f"{_rel(name)} names {named}"


def test_no_import_cycles() -> None:
    graph = {name: imports_of(name) - {name} for name in MODULES}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == []


def test_the_rules_see_real_imports() -> None:
    # The checks above pass vacuously if the scan finds nothing.
    assert "corenet.loop" in imports_of("corenet.proxy.app")
    assert "corenet.proxy.client" in imports_of("corenet.proxy.pool")
    assert "corenet.framing" in imports_of("corenet.proxy.client")
    assert len(_framework()) > 20


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.startswith(UPPER[1:])))
def test_no_module_is_over_600_lines(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{_rel(name)} has {lines} lines"
