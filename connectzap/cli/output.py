"""How every command shows results: a table (or a field list) for people, JSON for scripts, and a
progress bar for long work -- one helper each, for bundled and plugin commands alike.

::

    from connectzap.cli.output import Column, emit, json_option, track

    @cli.command()
    @json_option
    def things(as_json: bool) -> None:
        rows = [{"name": "a", "at": datetime.now(UTC)}]
        emit(rows, as_json, columns=[Column("name"), Column("when", "at")], empty="no things")

JSON output is indented, keeps non-ASCII text, and writes times as ISO 8601 (UTC as ``Z``, as the
REST API does). Tables go to
stdout with a header row; on a terminal they are drawn with rich, and when piped each row stays
on one line so ``grep`` and ``head`` work. Progress bars appear only when stderr is a terminal.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import BaseModel

from ..core.clock import iso_utc

__all__ = ["Column", "TimeParam", "emit", "emit_json", "json_option", "progress", "text", "track"]

T = TypeVar("T")

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (times in ISO 8601) instead of a table.")
"""The ``--json`` flag of a listing or show command; the command receives it as ``as_json``."""


@dataclass(frozen=True)
class Column:
    """A table column: its ``header`` and where the value comes from -- a field name (default: the
    header) or a function of the row."""

    header: str
    value: str | Callable[[Any], Any] | None = None

    def of(self, row: Any) -> Any:
        source = self.value if self.value is not None else self.header
        if callable(source):
            return source(row)
        return row.get(source) if isinstance(row, dict) else getattr(row, source, None)


def text(value: Any) -> str:
    """A value as a table shows it: times in UTC to the second, ``-`` for nothing."""
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, (list, tuple)):
        return ", ".join(text(v) for v in value) or "-"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return iso_utc(value)  # as pydantic writes a model's times (REST, the --json of views)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (Decimal, Path)):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return value


def emit_json(data: Any) -> None:
    click.echo(json.dumps(_jsonable(data), indent=2, ensure_ascii=False))


def emit(data: Any, as_json: bool, *, columns: Sequence[Column] | None = None, empty: str = "nothing to show",
         title: str | None = None) -> None:
    """Print ``data`` -- a list of rows (dicts or models), or one row -- as JSON or as a table.

    A list becomes one table row per item with ``columns`` (default: every field of the first
    row); one row becomes a field/value table (``columns`` choose and order the fields). An
    empty list prints ``empty`` (``[]`` in JSON).
    """
    if as_json:
        emit_json(data)
        return
    if isinstance(data, (list, tuple)):
        if not data:
            click.echo(empty)
            return
        columns = list(columns) if columns is not None else [Column(name) for name in _fields(data[0])]
        table = _table(title)
        for column in columns:
            table.add_column(column.header)
        for row in data:
            table.add_row(*(_cell(column.of(row)) for column in columns))
    else:
        columns = list(columns) if columns is not None else [Column(name) for name in _fields(data)]
        table = _table(title)
        table.add_column("field")
        table.add_column("value")
        for column in columns:
            table.add_row(column.header, _cell(column.of(data)))
    if _terminal():
        from rich.console import Console
        Console(soft_wrap=False).print(table)
        return
    # Piped: no box, no colour, one line per row however wide, no trailing blanks.
    from rich.console import Console
    table.box = None
    buffer = io.StringIO()
    console = Console(file=buffer, width=100_000, no_color=True, highlight=False, force_terminal=False)
    console.print(table)
    click.echo("\n".join(line.rstrip() for line in buffer.getvalue().splitlines()))


def _fields(row: Any) -> list[str]:
    if isinstance(row, BaseModel):
        return list(type(row).model_fields)
    if isinstance(row, dict):
        return list(row)
    raise TypeError(f"cannot show {type(row).__name__} as a table; pass columns")


def _cell(value: Any) -> Any:
    from rich.markup import escape
    return escape(text(value))


def _table(title: str | None) -> Any:
    from rich import box
    from rich.table import Table
    return Table(title=title, box=box.SIMPLE_HEAD, header_style="bold", show_edge=False, pad_edge=False)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _terminal() -> bool:
    return _isatty(sys.stdout)


# --- progress ------------------------------------------------------------------------------------

class _Progress:
    def __init__(self, advance: Callable[[float], None]) -> None:
        self._advance = advance

    def advance(self, amount: float = 1) -> None:
        self._advance(amount)


@contextmanager
def progress(description: str, total: float | None = None) -> Iterator[_Progress]:
    """A progress bar on stderr while the block runs -- only when stderr is a terminal, so piped
    and scheduled runs stay quiet. Call ``.advance(n)`` on what it yields."""
    if not _isatty(sys.stderr):
        yield _Progress(lambda amount: None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield _Progress(lambda amount: bar.advance(task, amount))


def track(items: Iterable[T], description: str, total: float | None = None) -> Iterator[T]:
    """Iterate ``items`` with a progress bar (see :func:`progress`); ``total`` defaults to ``len(items)``."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]  # hasattr above: a Sized the Iterable type cannot say
    with progress(description, total) as bar:
        for item in items:
            yield item
            bar.advance()


# --- time options ----------------------------------------------------------------------------------

_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class TimeParam(click.ParamType):
    """A point in time: ISO 8601 (``2026-01-31``, ``2026-01-31T12:00:00Z``; UTC when no zone is
    given) or how long ago (``30m``, ``2h``, ``7d``). The command receives seconds since the epoch."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        raw = str(value).strip()
        ago = _AGO.fullmatch(raw)
        if ago:
            seconds = float(ago.group(1)) * _UNITS[ago.group(2).lower()]
            return (datetime.now(UTC) - timedelta(seconds=seconds)).timestamp()
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{raw!r} is not a time: use ISO 8601 (2026-01-31 or 2026-01-31T12:00:00Z) "
                      "or an age such as 30m, 2h, 7d", param, ctx)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
