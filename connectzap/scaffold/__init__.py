"""``connectzap plugin new NAME``: scaffold a connector plugin package that works and is tested.

The generated package ``connectzap-NAME`` (module ``connectzap_NAME``) registers itself in the
``connectzap`` entry-point group and contains a connector for a small signed JSON webhook
(HMAC-SHA256 of the body) that turns a ``contact.created`` delivery into a lead, a README and
the one-line conformance test. Its tests pass as generated.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import click
import jinja2

from ..core.errors import ConfigurationError
from ..core.hookspecs import hookimpl

NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
SUFFIX = ".tmpl"


@dataclass(frozen=True)
class PluginNames:
    """The names one plugin goes by, derived from what the user typed."""

    hyphenated: str  # connectzap-<this> is the distribution
    underscored: str  # connectzap_<this> is the module; also the connector and entry-point name
    camel: str  # <this>Connector is the class

    @classmethod
    def of(cls, raw: str) -> PluginNames:
        name = raw.strip().lower().removeprefix("connectzap-").removeprefix("connectzap_")
        if not NAME.match(name):
            raise ConfigurationError(f"plugin name {raw!r}: use lower-case letters, digits and single '-' or '_' "
                                     "(e.g. 'acme-crm')")
        parts = re.split(r"[-_]", name)
        return cls(hyphenated="-".join(parts), underscored="_".join(parts),
                   camel="".join(p.capitalize() for p in parts))

    @property
    def distribution(self) -> str:
        return f"connectzap-{self.hyphenated}"

    @property
    def module(self) -> str:
        return f"connectzap_{self.underscored}"


def _files(node: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    out = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        path = f"{prefix}{child.name}"
        if child.is_dir():
            out += _files(child, path + "/")
        elif child.name.endswith(SUFFIX):
            out.append((path[: -len(SUFFIX)], child))
    return out


def create(raw_name: str, parent: Path, *, author: str = "") -> Path:
    """Write the package into ``parent/connectzap-NAME`` and return that directory."""
    names = PluginNames.of(raw_name)
    target = parent / names.distribution
    if target.exists():
        raise ConfigurationError(f"{target} already exists; choose another name or directory")
    from .. import __version__
    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False)
    values: dict[str, Any] = {"names": names, "author": author, "connectzap_version": __version__}
    for relative, source in _files(resources.files(__name__).joinpath("template")):
        path = target / relative.replace("__module__", names.underscored)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(env.from_string(source.read_text(encoding="utf-8")).render(**values), encoding="utf-8")
    return target


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.group("plugin")
    def plugin() -> None:
        """Create connectzap plugin packages."""

    @plugin.command("new")
    @click.argument("name")
    @click.option("--directory", "-d", default=".", show_default=True, type=click.Path(file_okay=False),
                  help="Where to create the package directory.")
    @click.option("--author", default="", help="Author name for pyproject.toml.")
    def new(name: str, directory: str, author: str) -> None:
        """Scaffold connectzap-NAME: a working connector, its conformance test and a README."""
        target = create(name, Path(directory), author=author)
        names = PluginNames.of(name)
        steps = "".join(f"  {step}\n" for step in next_steps(target))
        click.echo(f"created {target}\n\nnext (in the virtualenv connectzap is installed in):\n{steps}\n"
                   f"then edit {names.module}/connector.py; docs: docs/writing-connectors.md")


def next_steps(target: Path) -> list[str]:
    """Shell lines that install the new package with its test extra and run its tests.

    ``python -m`` runs pip and pytest with the interpreter that has connectzap, whichever
    ``pytest`` script happens to be first on PATH; ``[test]`` brings pytest itself.
    """
    return [f"cd {shlex.quote(str(target))}", "python -m pip install -e '.[test]'", "python -m pytest"]
