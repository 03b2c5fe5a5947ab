"""The plugin docs and the code agree: every hook documented under its exact signature, every
section complete, every example runnable; the tutorials' code compiles and names real APIs."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

import pytest

import connectzap
import connectzap.testing
from connectzap.core.plugins import pm

DOCS = Path(__file__).resolve().parents[1] / "docs"
HOOKS_DOC = DOCS / "plugin-hooks.md"
HEADING = re.compile(r"^## (\w+)\(([^)]*)\)\s*$", re.MULTILINE)
CODE = re.compile(r"```python\n(.*?)```", re.DOTALL)


def sections(text: str) -> dict[str, tuple[tuple[str, ...], str]]:
    """Hook name -> (documented argnames, the section's text)."""
    found = list(HEADING.finditer(text))
    out = {}
    for n, match in enumerate(found):
        end = found[n + 1].start() if n + 1 < len(found) else len(text)
        args = tuple(a.strip() for a in match.group(2).split(",") if a.strip())
        out[match.group(1)] = (args, text[match.end():end])
    return out


def hooks() -> dict[str, tuple[str, ...]]:
    return {name: tuple(getattr(pm.hook, name).spec.argnames) for name in dir(pm.hook) if not name.startswith("_")}


DOCUMENTED = sections(HOOKS_DOC.read_text())


def test_every_hook_is_documented_with_its_exact_signature():
    missing = sorted(set(hooks()) - set(DOCUMENTED))
    assert not missing, f"hooks missing from docs/plugin-hooks.md: {missing}"
    unknown = sorted(set(DOCUMENTED) - set(hooks()))
    assert not unknown, f"docs/plugin-hooks.md documents hooks that do not exist: {unknown}"
    for name, argnames in hooks().items():
        assert DOCUMENTED[name][0] == argnames, \
            f"## {name}({', '.join(DOCUMENTED[name][0])}) but the spec is {name}({', '.join(argnames)})"


@pytest.mark.parametrize("name", sorted(hooks()))
def test_hook_section_is_complete(name):
    argnames, body = DOCUMENTED[name]
    for arg in argnames:
        assert re.search(rf"^- `{arg}` — ", body, re.MULTILINE), f"{name}: argument {arg} is not described"
    for part in ("**When:**", "**Returns:**", "**Sync or async:**"):
        assert part in body, f"{name}: the section has no {part}"
    assert CODE.search(body), f"{name}: the section has no python example"


@pytest.mark.parametrize("name", sorted(hooks()))
def test_hook_example_runs_and_implements_that_hook(name):
    """Each example executes, and its @hookimpl functions are real hooks taking spec arguments."""
    _, body = DOCUMENTED[name]
    namespace: dict[str, object] = {"__name__": f"docs_example_{name}"}
    exec(compile(CODE.search(body).group(1), f"plugin-hooks.md#{name}", "exec"), namespace)
    spec = hooks()
    impls = [f for f in namespace.values() if inspect.isfunction(f) and hasattr(f, "connectzap_impl")]
    assert name in {f.__name__ for f in impls}, f"the {name} example does not implement {name}"
    for function in impls:
        params = tuple(inspect.signature(function).parameters)
        assert set(params) <= set(spec[function.__name__]), \
            f"{function.__name__}{params} takes arguments the hook does not pass"


def test_hook_docstrings_and_docs_name_the_same_arguments():
    from connectzap.core import hookspecs
    for name, argnames in hooks().items():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        for arg in argnames:
            assert f":param {arg}:" in doc, f"hookspecs.{name} does not document {arg}"


TUTORIALS = ["writing-connectors.md", "testing-connectors.md"]


@pytest.mark.parametrize("doc", TUTORIALS)
def test_tutorial_code_compiles_and_names_real_apis(doc):
    text = (DOCS / doc).read_text()
    blocks = CODE.findall(text)
    assert blocks, f"{doc} has no python code"
    modules = {"connectzap": connectzap, "connectzap.testing": connectzap.testing}
    for n, block in enumerate(blocks):
        tree = ast.parse(textwrap.dedent(block), f"{doc}[{n}]")  # quoted methods are indented
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                for alias in node.names:
                    assert hasattr(modules[node.module], alias.name), \
                        f"{doc} imports {alias.name} from {node.module}, which has no such name"


def test_tutorial_follows_the_example_package():
    """docs/writing-connectors.md quotes the example plugin; each quoted block must still be in it."""
    root = Path(__file__).resolve().parents[1]
    example = "\n".join(p.read_text() for p in (root / "examples" / "connectzap-calendly-like").rglob("*.py"))
    text = (DOCS / "writing-connectors.md").read_text()
    quoted = re.findall(r"<!-- from the example -->\n```python\n(.*?)```", text, re.DOTALL)
    assert len(quoted) >= 3, "the tutorial should quote the example package's real code"
    for block in quoted:
        for line in block.strip().splitlines():
            if line.strip() and not line.strip().startswith("#") and line.strip() != "...":
                assert line.rstrip() in example, f"tutorial line not in the example package: {line!r}"
