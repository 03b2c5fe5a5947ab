"""Event payload models are declared, not filled in by importing a module.

The kinds defined beside ``Event`` come from one table (``models.CORE_PAYLOADS``); ``send`` and a
connector's own kinds (HubSpot's ``resolve``, from ``Connector.payload_models``) are declared when
an engine starts.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from connectzap import hookimpl
from connectzap.core import payloads
from connectzap.core.errors import ConfigurationError
from connectzap.core.models import Event, EventKind, Order


def fresh_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_a_connector_declares_nothing() -> None:
    out = fresh_python("""
        from connectzap.core.models import EventKind, payload_model
        before = payload_model(EventKind.RESOLVE), payload_model(EventKind.SEND)
        import connectzap.connectors.hubspot.webhooks  # noqa: F401 -- used to register at import
        import connectzap.core.messages  # noqa: F401 -- so did this one, for send
        after = payload_model(EventKind.RESOLVE), payload_model(EventKind.SEND)
        print(before, after)
    """)
    assert out == "(None, None) (None, None)"


def test_an_engine_declares_its_connectors_kinds(tmp_path: Path) -> None:
    out = fresh_python(f"""
        from connectzap.core.models import Event, EventKind
        from connectzap.testing.apps import make_app
        # SQLite: a fresh process has no pytest plugin to drop a PostgreSQL schema it would leave
        app = make_app({str(tmp_path)!r}, database_url={f"sqlite:///{tmp_path / 'cz.db'}"!r},
                       connectors={{"hubspot": {{"access_token": "pat-x", "client_secrets": ["s"]}}}})
        event = Event(kind=EventKind.RESOLVE, source="hubspot", dedupe_key="k",
                      data={{"portal_id": "1", "object_id": "2", "purpose": "lead", "trigger": "creation"}})
        send = Event(kind=EventKind.SEND, source="api", dedupe_key="s",
                     data={{"to": "+4915112345678", "content": {{"type": "text", "body": "hi"}}}})
        print(type(event.payload()).__name__, type(send.payload()).__name__)
    """)
    assert out == "ContactNotice Outgoing"


def test_core_kinds_need_no_engine_and_no_import_order() -> None:
    event = Event.of(EventKind.ORDER_CREATED, Order(id="1", status="processing"), source="shop", dedupe_key="1")
    assert isinstance(event.payload(), Order) and event.has_typed_payload()
    undeclared = Event(kind=EventKind.RESOLVE, source="elsewhere", dedupe_key="x", data={})
    if payloads.declared(EventKind.RESOLVE) is None:
        assert not undeclared.has_typed_payload()
        with pytest.raises(LookupError, match="resolve"):
            undeclared.payload()


def test_conflicting_declarations_are_refused() -> None:
    class Mine(BaseModel):
        pass

    kind = EventKind.RESOLVE
    saved = dict(payloads._declared)
    try:
        payloads._declared.pop(kind, None)
        payloads.declare(kind, Mine, "connector a")
        payloads.declare(kind, Mine, "connector a")  # again: harmless
        with pytest.raises(ConfigurationError, match="connector b and connector a"):
            payloads.declare(kind, Order, "connector b")
    finally:
        payloads._declared.clear()
        payloads._declared.update(saved)


def test_a_connector_cannot_take_over_a_core_kind(tmp_path: Path) -> None:
    from connectzap.core.connector import Connector
    from connectzap.testing.apps import make_app
    from connectzap.testing.plugins import registered_plugin

    class Greedy(Connector):
        name = "greedy"
        enabled_by_default = True
        payload_models = {EventKind.ORDER_CREATED: BaseModel}

    class Plugin:
        @hookimpl
        def register_connectors(self, register: Any) -> None:
            register(Greedy)

    with registered_plugin(Plugin(), name="greedy_plugin"), \
            pytest.raises(ConfigurationError, match="connector greedy declares a payload model for order_created"):
        make_app(tmp_path)


def test_two_connectors_each_read_their_own_resolve_events(tmp_path: Path) -> None:
    """HubSpot's thin contact notices and WhatsApp's messaging-limit notices are both ``resolve``
    events: each is read with the model its own connector declared, in one engine."""
    from connectzap.connectors.hubspot.webhooks import ContactNotice
    from connectzap.connectors.whatsapp.webhooks import LimitNotice
    from connectzap.testing.apps import make_app

    app = make_app(tmp_path, connectors={
        "whatsapp": {"access_token": "t", "phone_number_id": "1", "app_secrets": ["s"], "verify_token": "v"},
        "hubspot": {"access_token": "pat-na1-payload-test", "client_secrets": ["c"]}})
    try:
        limit = Event(kind=EventKind.RESOLVE, source="whatsapp", dedupe_key="w",
                      data={"limit": 2000, "reported": "TIER_2K"})
        contact = Event(kind=EventKind.RESOLVE, source="hubspot", dedupe_key="h",
                        data={"portal_id": "1", "object_id": "2", "purpose": "lead", "trigger": "creation"})
        notice = limit.payload().root  # type: ignore[attr-defined]
        assert isinstance(notice, LimitNotice) and notice.limit == 2000
        assert isinstance(contact.payload(), ContactNotice)
    finally:
        app.close()
    with pytest.raises(ConfigurationError, match="from whatsapp"):  # one source, two models: refused
        payloads.declare(EventKind.RESOLVE, Order, "connector other", source="whatsapp")
