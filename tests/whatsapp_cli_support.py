"""Running ``connectzap`` commands in-process against a config file with a ``[connectors.whatsapp]`` section."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from connectzap.cli import _install_plugin_commands, cli


def whatsapp_cli(tmp_path: Path, section: str, *, catch_exceptions: bool = True) -> Callable[..., Result]:
    """An ``invoke(*args, input=None)`` for a config of a quiet sandbox, ``tmp_path``'s data dir and
    ``section`` (the TOML after ``[connectors.whatsapp]``)."""
    config = tmp_path / "connectzap.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[sandbox]\nquiet = true\n[connectors.whatsapp]\n{section}')
    _install_plugin_commands()
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Any:
        return runner.invoke(cli, ["--config", str(config), *args], catch_exceptions=catch_exceptions, input=input)
    return invoke
