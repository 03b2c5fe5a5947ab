"""A local stand-in for the few HubSpot CRM endpoints the connector uses (tests, demos).

Point ``api_base_url`` at :attr:`FakeHubSpot.url`. It keeps contacts, communications, notes, calls
in memory, answers searches with EQ filters (OR-ed groups, AND-ed filters), can hide new records
from search (HubSpot's index lag) and can answer scripted failures first (429, 5xx, 403).
Request and response shapes follow HubSpot's CRM v3 API reference.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ...core.clock import iso_utc

OBJECTS = {"contacts", "communications", "notes", "calls"}


@dataclass
class Scripted:
    method: str
    path_prefix: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorization: str | None


class FakeHubSpot:
    def __init__(self, *, search_lag: bool = False) -> None:
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in OBJECTS}
        self.associations: list[tuple[str, str, str, int]] = []  # (object, id, contact id, type id)
        self.requests: list[Recorded] = []
        self.search_lag = search_lag
        """When true, records created through the API are not found by search (until :meth:`index`)."""
        self.unindexed: set[tuple[str, str]] = set()
        self.script: deque[Scripted] = deque()
        self.properties: dict[str, dict[str, Any]] = {}
        """Contact property definitions created through the properties API, by name."""
        self.lists: dict[str, list[str]] = {}
        """Contact lists: list id -> member contact ids (:meth:`add_list`)."""
        self.undefined: set[str] = set()
        """Custom contact properties the portal lacks: a search filter or a write naming one is refused
        with 400 (as HubSpot refuses an unknown property) until it is created through the properties API."""
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> FakeHubSpot:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes | bytearray) else host}:{port}"

    # --- set-up and inspection ---------------------------------------------------------------

    def add_contact(self, properties: dict[str, Any], contact_id: str | None = None) -> str:
        with self._lock:
            new_id = contact_id or str(next(self._ids))
            self.records["contacts"][new_id] = self._record(new_id, properties)
        return new_id

    def add_note(self, body: str, contact_ids: list[str]) -> str:
        """A note as an agent writes it on contact records (HTML body, associated with type 202)."""
        with self._lock:
            new_id = str(next(self._ids))
            stamp = str(int(datetime.now(UTC).timestamp() * 1000))
            self.records["notes"][new_id] = self._record(new_id, {"hs_note_body": body, "hs_timestamp": stamp})
            self.associations.extend(("notes", new_id, contact, 202) for contact in contact_ids)
        return new_id

    def add_list(self, list_id: str, members: list[str]) -> None:
        with self._lock:
            self.lists[list_id] = list(members)

    def index(self) -> None:
        self.unindexed.clear()

    def fail_next(self, method: str, path_prefix: str, status: int, body: dict[str, Any] | None = None,
                  headers: dict[str, str] | None = None) -> None:
        self.script.append(Scripted(method.upper(), path_prefix, status, body or {"status": "error"}, headers or {}))

    def objects(self, kind: str) -> list[dict[str, Any]]:
        return list(self.records[kind].values())

    def calls(self, method: str, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # --- behaviour ------------------------------------------------------------------------------

    @staticmethod
    def _record(object_id: str, properties: dict[str, Any]) -> dict[str, Any]:
        stamp = iso_utc(datetime.now(UTC))
        props = {k: None if v is None else str(v) for k, v in properties.items()}
        props.setdefault("hs_object_id", object_id)
        props.setdefault("createdate", stamp)
        return {"id": object_id, "properties": props, "createdAt": stamp, "updatedAt": stamp, "archived": False}

    def _view(self, record: dict[str, Any], wanted: list[str] | None) -> dict[str, Any]:
        props = record["properties"]
        shown = {k: props.get(k) for k in wanted} if wanted else dict(props)
        shown["hs_object_id"] = record["id"]
        return {**record, "properties": shown}

    def _contacts_of(self, kind: str, object_id: str) -> dict[str, Any]:
        """A record's associated contacts, as a GET with ``associations=contacts`` shows them."""
        linked = [{"id": contact, "type": f"{kind[:-1]}_to_contact"}
                  for owner, oid, contact, _ in self.associations if (owner, oid) == (kind, object_id)]
        return {"contacts": {"results": linked}} if linked else {}

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any, dict[str, str]]:
        for index, scripted in enumerate(self.script):
            if scripted.method == method and path.startswith(scripted.path_prefix):
                del self.script[index]
                return scripted.status, scripted.body, scripted.headers
        parts = [p for p in path.split("/") if p]
        if parts[:3] == ["crm", "v3", "lists"] and method == "GET":
            with self._lock:
                return self._list(parts[3:], query)
        if parts[:5] == ["crm", "v3", "objects", "contacts", "batch"] and method == "POST":
            with self._lock:
                return self._batch(parts[5:], body or {})
        if parts[:4] == ["crm", "v3", "objects", "notes"] and parts[4:] == ["batch", "create"] and method == "POST":
            with self._lock:
                return self._create_notes((body or {}).get("inputs") or [])
        if parts[:4] == ["crm", "v3", "properties", "contacts"]:
            with self._lock:
                return self._property(method, parts[4:], body or {})
        if parts[:3] != ["crm", "v3", "objects"] or len(parts) < 4 or parts[3] not in OBJECTS:
            return 404, {"status": "error", "message": "unknown path", "category": "OBJECT_NOT_FOUND"}, {}
        kind, rest = parts[3], parts[4:]
        given = body if isinstance(body, dict) else {}
        if rest == ["search"]:
            named = [f.get("propertyName") for g in given.get("filterGroups", []) for f in g.get("filters", [])]
        else:
            named = list(given.get("properties") or {}) if method in ("POST", "PATCH") else []
        unknown = sorted(n for n in named if n in self.undefined and n not in self.properties)
        if kind == "contacts" and unknown:
            return 400, {"status": "error", "category": "VALIDATION_ERROR",
                         "message": f"Property \"{unknown[0]}\" does not exist"}, {}
        with self._lock:
            if method == "POST" and rest == ["search"]:
                return 200, self._search(kind, body or {}), {}
            if method == "POST" and not rest:
                new_id = str(next(self._ids))
                created = self._record(new_id, (body or {}).get("properties", {}))
                self.records[kind][new_id] = created
                if self.search_lag:
                    self.unindexed.add((kind, new_id))
                for assoc in (body or {}).get("associations", []):
                    for spec in assoc.get("types", []):
                        self.associations.append((kind, new_id, str(assoc["to"]["id"]), int(spec["associationTypeId"])))
                return 201, created, {}
            record = self.records[kind].get(rest[0]) if rest else None
            if record is None:
                return 404, {"status": "error", "message": "resource not found", "category": "OBJECT_NOT_FOUND"}, {}
            if method == "GET":
                wanted = query.get("properties", [])
                names = [n for item in wanted for n in item.split(",") if n]
                view = self._view(record, names)
                if "contacts" in [n for item in query.get("associations", []) for n in item.split(",")]:
                    view["associations"] = self._contacts_of(kind, record["id"])
                return 200, view, {}
            if method == "PATCH":
                record["properties"].update({k: str(v) for k, v in (body or {}).get("properties", {}).items()})
                return 200, record, {}
        return 405, {"status": "error", "message": "method not allowed"}, {}

    def _property(self, method: str, rest: list[str], body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """``GET /crm/v3/properties/contacts/{name}`` and ``POST /crm/v3/properties/contacts``."""
        if method == "GET" and len(rest) == 1:
            found = self.properties.get(rest[0])
            if found is None:
                return 404, {"status": "error", "message": f"property {rest[0]} not found",
                             "category": "OBJECT_NOT_FOUND"}, {}
            return 200, found, {}
        if method == "POST" and not rest:
            name = str(body.get("name") or "")
            if name in self.properties:
                return 409, {"status": "error", "category": "CONFLICT",
                             "message": f"A property named '{name}' already exists."}, {}
            self.properties[name] = {**body, "hidden": False, "hubspotDefined": False}
            return 201, self.properties[name], {}
        return 405, {"status": "error", "message": "method not allowed"}, {}

    def _list(self, rest: list[str], query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        """``GET /crm/v3/lists/{id}`` and ``GET /crm/v3/lists/{id}/memberships`` (ascending record ids,
        ``limit`` up to 250, ``after`` the last id of the previous page)."""
        members = self.lists.get(rest[0]) if rest else None
        if members is None:
            return 404, {"status": "error", "message": "List does not exist", "category": "OBJECT_NOT_FOUND"}, {}
        if rest[1:] == []:
            return 200, {"list": {"listId": rest[0], "objectTypeId": "0-1", "name": f"list {rest[0]}",
                                  "processingType": "MANUAL", "size": len(members)}}, {}
        if rest[1:] != ["memberships"]:
            return 404, {"status": "error", "message": "unknown path", "category": "OBJECT_NOT_FOUND"}, {}
        limit = min(int((query.get("limit") or ["100"])[0]), 250)
        after = (query.get("after") or [""])[0] or None
        ordered = sorted(members, key=int)
        start = next((i for i, m in enumerate(ordered) if after is None or int(m) > int(after)), len(ordered))
        page = ordered[start:start + limit]
        out: dict[str, Any] = {"results": [{"recordId": m, "membershipTimestamp": "2026-11-30T09:00:00Z"}
                                           for m in page], "total": len(members)}
        if start + limit < len(ordered):
            out["paging"] = {"next": {"after": page[-1]}}
        return 200, out, {}

    def _batch(self, rest: list[str], body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """``POST /crm/v3/objects/contacts/batch/read`` and ``.../batch/update`` (up to 100 inputs;
        an update naming a missing contact is refused whole, as a 404... the stand-in's choice)."""
        inputs = body.get("inputs") or []
        if len(inputs) > 100:
            return 400, {"status": "error", "category": "VALIDATION_ERROR", "message": "too many inputs"}, {}
        stamp = iso_utc(datetime.now(UTC))
        done = {"status": "COMPLETE", "startedAt": stamp, "completedAt": stamp}
        contacts = self.records["contacts"]
        if rest == ["read"]:
            wanted = body.get("properties") or None
            return 200, {**done, "results": [self._view(contacts[i["id"]], wanted) for i in inputs
                                             if i["id"] in contacts]}, {}
        if rest == ["update"]:
            missing = [i["id"] for i in inputs if i["id"] not in contacts]
            if missing:
                return 404, {"status": "error", "category": "OBJECT_NOT_FOUND",
                             "message": f"Could not get some CONTACT objects, they may be deleted or not exist. "
                                        f"Check that ids are valid. Missing: {missing}"}, {}
            unknown = sorted({n for i in inputs for n in i.get("properties", {})
                              if n in self.undefined and n not in self.properties})
            if unknown:
                return 400, {"status": "error", "category": "VALIDATION_ERROR",
                             "message": f"Property \"{unknown[0]}\" does not exist"}, {}
            for i in inputs:
                contacts[i["id"]]["properties"].update({k: str(v) for k, v in i.get("properties", {}).items()})
            return 200, {**done, "results": [contacts[i["id"]] for i in inputs]}, {}
        return 404, {"status": "error", "message": "unknown path", "category": "OBJECT_NOT_FOUND"}, {}

    def _create_notes(self, inputs: list[dict[str, Any]]) -> tuple[int, Any, dict[str, str]]:
        """``POST /crm/v3/objects/notes/batch/create`` (up to 100 inputs, each with its associations);
        one associated to a missing contact refuses the whole batch (the stand-in's choice of answer)."""
        if len(inputs) > 100:
            return 400, {"status": "error", "category": "VALIDATION_ERROR", "message": "too many inputs"}, {}
        missing = sorted({str(a["to"]["id"]) for i in inputs for a in i.get("associations", [])
                          if str(a["to"]["id"]) not in self.records["contacts"]})
        if missing:
            return 400, {"status": "error", "category": "VALIDATION_ERROR",
                         "message": f"One or more association targets do not exist: {missing}"}, {}
        created = []
        for item in inputs:
            new_id = str(next(self._ids))
            self.records["notes"][new_id] = record = self._record(new_id, item.get("properties", {}))
            if self.search_lag:
                self.unindexed.add(("notes", new_id))
            for assoc in item.get("associations", []):
                for spec in assoc.get("types", []):
                    self.associations.append(("notes", new_id, str(assoc["to"]["id"]), int(spec["associationTypeId"])))
            created.append(record)
        stamp = iso_utc(datetime.now(UTC))
        return 201, {"status": "COMPLETE", "startedAt": stamp, "completedAt": stamp, "results": created}, {}

    def _search(self, kind: str, request: dict[str, Any]) -> dict[str, Any]:
        groups = request.get("filterGroups") or []

        def matches(record: dict[str, Any]) -> bool:
            if (kind, record["id"]) in self.unindexed:
                return False
            props = record["properties"]
            return any(all(self._filter(props, f) for f in g.get("filters", [])) for g in groups) if groups else True

        found = [r for r in self.records[kind].values() if matches(r)]
        wanted = request.get("properties") or None
        start, limit = int(request.get("after") or 0), request.get("limit", 10)
        page: dict[str, Any] = {"total": len(found),
                                "results": [self._view(r, wanted) for r in found[start:start + limit]]}
        if start + limit < len(found):
            page["paging"] = {"next": {"after": str(start + limit)}}
        return page

    @staticmethod
    def _filter(props: dict[str, Any], rule: dict[str, Any]) -> bool:
        value = props.get(rule["propertyName"])
        if rule.get("operator") == "EQ":
            return value is not None and str(value).casefold() == str(rule.get("value")).casefold()
        if rule.get("operator") == "HAS_PROPERTY":
            return value not in (None, "")
        raise ValueError(f"fake HubSpot does not implement operator {rule.get('operator')}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                query = parse_qs(split.query)
                fake.requests.append(Recorded(self.command, split.path, query, body,
                                              self.headers.get("Authorization")))
                status, answer, headers = fake.handle(self.command, split.path, query, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
