"""Audiences read from an external system through a connector (a CRM list, a shop's customers).

The core knows no vendor: a connector names the sources it reads in ``audience_sources`` and
yields :class:`~connectzap.core.connector.AudienceMember` records from ``audience(query)``. This
module finds that connector, turns its records into the same checked rows a file gives (numbers
to E.164, parameters from the records' fields) and drives the connector's asynchronous reading
from the synchronous load, one record at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from ..connector import AudienceMember, AudienceQuery, Connector
from ..errors import PayloadError
from .audience import BadLine, Params, Recipient, recipient

FieldMap = list[str] | dict[str, str]
"""Where each template body parameter comes from: a record field per position (``["firstname"]``)
or per parameter name (``{"first_name": "firstname"}``)."""


def parse_from(text: str) -> tuple[str, dict[str, str]]:
    """The CLI's ``--from SOURCE:SPEC``: ``hubspot-list:123`` is the source ``hubspot_list`` with
    ``{"id": "123"}``; ``woocommerce:days=30,min_total=50`` the source ``woocommerce`` with those
    options (text; the connector checks them)."""
    name, _, spec = text.partition(":")
    source = name.strip().lower().replace("-", "_")
    if not source:
        raise PayloadError(f"--from {text!r}: name a source, e.g. hubspot-list:123", field="from")
    options: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            if "id" in options:
                raise PayloadError(f"--from {text!r}: {part!r} is neither the id nor NAME=VALUE", field="from")
            options["id"] = part
        else:
            options[key.strip()] = value.strip()
    return source, options


def fields_of(field_map: FieldMap | None) -> tuple[str, ...]:
    if not field_map:
        return ()
    names = list(field_map.values()) if isinstance(field_map, dict) else list(field_map)
    return tuple(dict.fromkeys(names))


def source_connector(connectors: Iterable[Connector], source: str) -> Connector:
    """The enabled connector that reads ``source``, or a :class:`PayloadError` naming those there are."""
    known: dict[str, Connector] = {}
    for connector in connectors:
        for name in connector.audience_sources:
            known.setdefault(name, connector)
    if source not in known:
        offered = ", ".join(sorted(known)) or "none (enable a connector that reads audiences, e.g. hubspot)"
        raise PayloadError(f"no audience source {source!r}; the enabled connectors offer: {offered}",
                           field="source")
    return known[source]


def _params(member: AudienceMember, field_map: FieldMap | None) -> Params | str:
    """The member's template parameters, or why it has none usable."""
    if not field_map:
        return []
    if isinstance(field_map, dict):
        # A named parameter the record leaves empty falls back to the campaign's default body.
        return {name: str(member.fields[field]).strip() for name, field in field_map.items()
                if str(member.fields.get(field) or "").strip()}
    values = [str(member.fields.get(field) or "").strip() for field in field_map]
    empty = [field for field, value in zip(field_map, values, strict=True) if not value]
    if empty:
        return f"the field {empty[0]} is empty (a positional parameter needs a value)"
    return values


def rows(members: Iterable[AudienceMember], field_map: FieldMap | None, secret: bytes,
         country: str | None) -> Iterator[Recipient | BadLine]:
    """Checked audience rows, numbered from 1 in the source's order. A record without a usable
    number is a bad row naming the record (its id, never a number) and why."""
    for number, member in enumerate(members, start=1):
        params = _params(member, field_map)
        if isinstance(params, str):
            yield BadLine(number, f"{member.ref}: {params}")
            continue
        row = recipient(number, member.phone, member.country, params, secret, country, ref=member.ref)
        yield BadLine(number, f"{member.ref}: {row.reason}") if isinstance(row, BadLine) else row


class SourceReader:
    """A connector's asynchronous audience, read one record at a time from synchronous code (the
    CLI, a REST route's worker thread) on an event loop of its own.

    Opening reads the first page at once: a missing list or refused credentials fail here, before
    a campaign or an audience is touched."""

    def __init__(self, members: AsyncIterator[AudienceMember]) -> None:
        self._members = members
        self._loop = asyncio.new_event_loop()
        self._first: list[AudienceMember] = []
        try:
            self._first = [self._loop.run_until_complete(anext(members))]
        except StopAsyncIteration:
            pass
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[AudienceMember]:
        yield from self._first
        self._first = []
        while True:
            try:
                yield self._loop.run_until_complete(anext(self._members))
            except StopAsyncIteration:
                return

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            if isinstance(self._members, AsyncGenerator):
                self._loop.run_until_complete(self._members.aclose())
            # the connector's calls ran in this loop's threads: let them finish before it goes
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
        finally:
            self._loop.close()


def query_for(source: str, options: Mapping[str, Any], field_map: FieldMap | None) -> AudienceQuery:
    return AudienceQuery(source=source, options=dict(options), fields=fields_of(field_map))
