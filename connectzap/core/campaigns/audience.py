"""Audiences from files: CSV or JSON lines, read as a stream and checked line by line.

CSV: a ``phone`` column, optionally ``country`` (ISO code for national numbers), and one column
per template body parameter -- numbered columns (``1``, ``2``, ...) for a template with positional
parameters, named ones (``first_name``) for named parameters. JSON lines: one object per line,
``{"phone": "+49...", "country": "DE", "params": {"first_name": "Ana"}}`` (``params`` a list for
positional parameters). A bad line is named with its number and why; nothing is kept of it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import phonenumbers

from ..errors import InvalidPhoneError
from ..phones import contact_key, country_of_number, mask, scrub, to_e164
from ..wording import counted, plural
from .send_window import zones_of_number

PHONE_COLUMNS = ("phone", "number", "phone_number")
COUNTRY_COLUMN = "country"
Params = list[str] | dict[str, str]


@dataclass(frozen=True)
class Recipient:
    """One checked line of an audience."""

    line: int
    phone: str  # E.164
    contact_key: str
    masked: str
    zones: tuple[str, ...]
    params: Params
    ref: str | None = None
    """The record's id in the external source it came from (a HubSpot contact, a shop's customer)."""
    country: str | None = None
    """The number's ISO 3166 region (``DE``), None when its country code names none."""


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str


class BadAudience(ValueError):
    """The file cannot be read as an audience at all (its header, its format)."""


def recipient(line: int, phone: Any, country: Any, params: Any, secret: bytes,
              default_country: str | None, *, ref: str | None = None) -> Recipient | BadLine:
    """One checked recipient; ``ref`` is its record's id in an external source (see :mod:`.sources`)."""
    if phone is None or not str(phone).strip():
        return BadLine(line, "no phone number")
    if country is not None and not isinstance(country, str):
        return BadLine(line, "country must be an ISO code such as DE")
    try:
        e164 = to_e164(str(phone).strip(), (country or "").strip().upper() or default_country)
    except InvalidPhoneError as exc:
        return BadLine(line, f"invalid phone number: {scrub(str(exc))}")
    checked = _params(params)
    if isinstance(checked, str):
        return BadLine(line, checked)
    # Parsed once more for its zones and region (the E.164 from to_e164 always parses); a million-line
    # audience paid a third parse and number-type check when each was looked up on its own.
    number = phonenumbers.parse(e164)
    return Recipient(line, e164, contact_key(e164, secret), mask(e164), zones_of_number(number), checked, ref,
                     country_of_number(number))


def _params(params: Any) -> Params | str:
    """The parameters as strings, or why they cannot be."""
    if params is None:
        return []
    if isinstance(params, list):
        values = params
    elif isinstance(params, dict):
        values = list(params.values())
    else:
        return "params must be a list (positional) or an object (named)"
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return "every parameter must be text or a number"
        if not str(value).strip():
            return "a parameter is empty (Meta refuses empty parameters)"
    if isinstance(params, list):
        return [str(v) for v in params]
    return {str(k): str(v) for k, v in params.items()}


def read_csv(stream: TextIO, secret: bytes, country: str | None = None) -> Iterator[Recipient | BadLine]:
    reader = csv.DictReader(stream)
    header = [(name or "").strip() for name in reader.fieldnames or []]
    phone_column = next((c for c in header if c.lower() in PHONE_COLUMNS), None)
    if phone_column is None:
        raise BadAudience(_no_phone_column(header))
    reader.fieldnames = header
    others = [c for c in header if c not in (phone_column, COUNTRY_COLUMN) and c]
    positional = [c for c in others if c.isdigit()]
    if positional and len(positional) != len(others):
        raise BadAudience("parameter columns are either all numbered (positional: 1, 2, ...) or all named; "
                          f"this header mixes them: {', '.join(others)}")
    if positional and sorted(int(c) for c in positional) != list(range(1, len(positional) + 1)):
        raise BadAudience(f"numbered parameter columns must be 1 to {len(positional)}; found {', '.join(positional)}")
    order = sorted(positional, key=int)
    for row in reader:
        if None in row:
            yield BadLine(reader.line_num, f"{counted(len(row[None]), 'more field')} than the header has")
            continue
        missing = [c for c in header if c and row.get(c) is None]
        if missing and any(c not in (phone_column, COUNTRY_COLUMN) for c in missing):
            # csv fills a short row with None: say which columns it lacks, not that a parameter is not text
            yield BadLine(reader.line_num, f"{counted(len(missing), 'field')} fewer than the header has: no value "
                                           f"for {plural(len(missing), 'column')} {', '.join(missing)}")
            continue
        params: Any = [row[c] for c in order] if positional else {c: row[c] for c in others}
        yield recipient(reader.line_num, row.get(phone_column), row.get(COUNTRY_COLUMN) or None, params, secret,
                         country)


def _no_phone_column(header: list[str]) -> str:
    """Why a header has no phone column, and what to do: an empty file, or one separated by
    semicolons or tabs (a spreadsheet's export in many locales) read as a single column."""
    wanted = f"a phone column ({', '.join(PHONE_COLUMNS)})"
    if not any(header):
        return (f"the file is empty or its first line is blank; the first line must be the header, "
                f"with {wanted}, e.g. phone,country,1,2")
    if len(header) == 1:
        for separator, named in ((";", "';'"), ("\t", "tabs")):
            if separator in header[0]:
                return (f"the file is separated by {named}, not commas (its header reads as one column: "
                        f"{header[0]!r}); save it as comma-separated CSV (in a spreadsheet: CSV, comma "
                        "delimited), or as JSON lines")
    return f"the header needs {wanted}; it has: {', '.join(header)}"


def read_jsonl(lines: Iterable[str], secret: bytes, country: str | None = None) -> Iterator[Recipient | BadLine]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            item = json.loads(text)
        except json.JSONDecodeError as exc:
            yield BadLine(number, f"not JSON: {exc.msg}")
            continue
        if not isinstance(item, dict):
            yield BadLine(number, "each line must be a JSON object")
            continue
        unknown = set(item) - {"phone", "country", "params"}
        if unknown:
            yield BadLine(number, f"unknown {plural(len(unknown), 'field')}: {', '.join(sorted(unknown))} "
                                  "(use phone, country, params)")
            continue
        yield recipient(number, item.get("phone"), item.get("country"), item.get("params"), secret, country)


def read_items(items: Iterable[dict[str, Any]], secret: bytes,
               country: str | None = None) -> Iterator[Recipient | BadLine]:
    """An audience given as objects (the REST API): numbered from 1, like lines."""
    for number, item in enumerate(items, start=1):
        yield recipient(number, item.get("phone"), item.get("country"), item.get("params"), secret, country)


def read_file(stream: TextIO, fmt: str, secret: bytes, country: str | None = None) -> Iterator[Recipient | BadLine]:
    """``fmt``: ``csv`` or ``jsonl``."""
    if fmt == "csv":
        return read_csv(stream, secret, country)
    if fmt == "jsonl":
        return read_jsonl(stream, secret, country)
    raise BadAudience(f"unknown audience format {fmt!r}: use csv or jsonl")


def format_of(name: str) -> str:
    """The format a file name says: ``.jsonl``/``.ndjson`` are JSON lines, anything else CSV."""
    return "jsonl" if name.lower().endswith((".jsonl", ".ndjson")) else "csv"
