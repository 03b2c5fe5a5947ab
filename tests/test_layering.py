"""The package's shape, checked on the source: ``connectzap/core`` imports no connector and no
vendor SDK, and no module of ``connectzap`` imports itself back through others (no import cycle).

Imports are read with :mod:`ast`, wherever they are written -- at module level or inside a
function (a deferred import is still a dependency; it only hides the cycle until run time).
The cycle check leaves out imports under ``if TYPE_CHECKING:``: they are never executed and
exist for annotations only (``Connector.__init__`` names the engine it is given, for example).
The core check counts them too: the core must not even name a vendor's types.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import connectzap

PACKAGE_DIR = Path(connectzap.__file__).resolve().parent
CORE = "connectzap.core"

VENDOR_SDKS = frozenset({"hubspot", "woocommerce", "requests", "aiohttp", "httpx", "httpx_aiohttp", "jmespath",
                         "urllib3", "boto3", "twilio", "stripe", "shopify"})
"""Clients of external systems and HTTP libraries: they belong to the connectors that talk to them."""

CORE_LIBRARIES = frozenset({"sqlalchemy", "alembic", "pydantic", "pydantic_core", "pydantic_settings", "pluggy",
                            "fastapi", "starlette", "uvicorn", "uvloop", "click", "prometheus_client", "phonenumbers",
                            "jinja2", "rich", "email_validator"})
"""Third-party libraries the core may use (storage, models, plugins, the HTTP edge, the CLI's
helpers). A library that is not listed fails the test: add it here only if it is no vendor's SDK."""


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module, absolute (a submodule when ``from package import submodule``)
    line: int
    type_checking: bool


def package_modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package: dotted name -> (file, is a package's ``__init__``)."""
    modules = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        modules[".".join(parts)] = (path, is_package)
    return modules


MODULES = package_modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement in ``tree`` and whether it sits under ``if TYPE_CHECKING:``."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, guarded))
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for item in child.body:
                    visit_one(item, True)
                for item in child.orelse:
                    visit_one(item, guarded)
                continue
            visit(child, guarded)

    def visit_one(item: ast.stmt, guarded: bool) -> None:
        if isinstance(item, (ast.Import, ast.ImportFrom)):
            found.append((item, guarded))
        else:
            visit(item, guarded)

    visit(tree, False)
    return found


def imports_of(module: str) -> list[Import]:
    path, is_package = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out = []
    for node, guarded in _import_nodes(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                package = ".".join(base + ([node.module] if node.module else []))
            else:
                package = node.module or ""
            submodules = [f"{package}.{alias.name}" for alias in node.names if f"{package}.{alias.name}" in MODULES]
            targets = submodules + ([package] if len(submodules) < len(node.names) else [])
        out += [Import(module, target, node.lineno, guarded) for target in targets]
    return out


# --- the core stays the core ----------------------------------------------------------------------

CORE_MODULES = sorted(m for m in MODULES if m == CORE or m.startswith(CORE + "."))


def core_violation(imp: Import) -> str | None:
    target = imp.target
    top = target.split(".")[0]
    if top == "connectzap":
        if target == CORE or target.startswith(CORE + "."):
            return None
        if target.startswith("connectzap.connectors"):
            return "imports a connector"
        return "imports outside the core (the core depends on nothing else in the package)"
    if top in VENDOR_SDKS:
        return "imports a vendor SDK / HTTP client (it belongs in a connector)"
    if top in sys.stdlib_module_names or top == "__future__":
        return None
    if top not in CORE_LIBRARIES:
        return f"imports {top!r}, which is not a library the core uses (tests/test_layering.py CORE_LIBRARIES)"
    return None


@pytest.mark.parametrize("module", CORE_MODULES)
def test_the_core_imports_no_connector_and_no_vendor_sdk(module: str) -> None:
    problems = [f"{module}:{imp.line} {imp.target}: {why}" for imp in imports_of(module)
                if (why := core_violation(imp))]
    assert not problems, "\n".join(problems)


def test_the_core_check_catches_what_it_should() -> None:
    """The rule itself, on made-up imports: it must be able to fail."""
    def check(target: str) -> str | None:
        return core_violation(Import("connectzap.core.app", target, 1, False))

    assert check("connectzap.connectors.whatsapp.sandbox") == "imports a connector"
    assert check("connectzap.testing") is not None and check("connectzap") is not None
    assert check("hubspot.crm.contacts") is not None and check("requests") is not None
    assert check("some_new_sdk") is not None
    assert check("connectzap.core.channel") is None and check("sqlalchemy.orm") is None and check("json") is None


# --- no cycles ------------------------------------------------------------------------------------

def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for module in MODULES:
        for imp in imports_of(module):
            if not imp.type_checking and imp.target in MODULES and imp.target != module:
                graph[module].add(imp.target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(_path(graph, set(component)))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for v in sorted(graph):
            if v not in index:
                connect(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def _path(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One cycle through ``component``, readable: a -> b -> ... -> a."""
    start = min(component)
    parents: dict[str, str] = {}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if w not in parents:
                parents[w] = v
                queue.append(w)
    return sorted(component)


def test_no_import_cycle_anywhere_in_the_package() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_deferred_and_type_checking_imports_are_seen() -> None:
    """A function-level import counts for both checks; a TYPE_CHECKING one only for the core check."""
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\n"
                     "def f():\n    import b\n")
    seen = {(node.names[0].name, guarded) for node, guarded in _import_nodes(tree) if isinstance(node, ast.Import)}
    assert seen == {("a", True), ("b", False)}


# --- deprecated aliases -----------------------------------------------------------------------------

def test_the_deprecated_workers_alias_still_works_and_nothing_of_ours_imports_it() -> None:
    """``connectzap.core.workers`` stays for third parties, with its warning; the package does not
    import it (pyproject's filterwarnings turns its warning into an error for the tests too)."""
    import importlib
    import warnings

    importers = [f"{imp.module}:{imp.line}" for module in MODULES for imp in imports_of(module)
                 if imp.target == "connectzap.core.workers"]
    assert importers == []
    sys.modules.pop("connectzap.core.workers", None)
    with pytest.warns(DeprecationWarning, match="import Worker from connectzap.core.worker"):
        alias = importlib.import_module("connectzap.core.workers")
    from connectzap.core.worker import Worker
    assert alias.Worker is Worker
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sys.modules.pop("connectzap.core.workers", None)
        with pytest.raises(DeprecationWarning):
            importlib.import_module("connectzap.core.workers")
