"""Canonical payloads shipped with connectzap, for connectzap's tests and plugin authors' tests.

* ``whatsapp/*.json`` -- WhatsApp Cloud API webhook bodies (Meta's published examples): inbound
  text, template quick-reply, interactive button reply, sent/delivered/failed statuses, a template
  status update and a marketing opt-out (``user_preferences``).
* ``events/*.json`` -- one journal event per event kind (``order_created``, ``order_updated``,
  ``lead``, ``inbound_message``, ``message_status``, ``consent_changed``), ready for ``app.ingest``.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from ...core.clock import iso_utc, utcnow
from ...core.models import Event, EventKind

EVENT_KINDS = ("order_created", "order_updated", "lead", "inbound_message", "message_status", "consent_changed")


def _file(name: str) -> Any:
    path = name if name.endswith(".json") else name + ".json"
    node = resources.files(__name__)
    for part in path.split("/"):
        node = node.joinpath(part)
    if not node.is_file():
        raise FileNotFoundError(f"no shipped payload {path!r}; see payload_names()")
    return node


def payload_names(folder: str | None = None) -> list[str]:
    """Names accepted by :func:`load_payload`, e.g. ``"whatsapp/message_text"``."""
    out = []
    for sub in ("whatsapp", "events"):
        if folder in (None, sub):
            out += sorted(f"{sub}/{p.name[:-5]}" for p in resources.files(__name__).joinpath(sub).iterdir()
                          if p.name.endswith(".json"))
    return out


def load_payload(name: str) -> Any:
    """A fresh copy of a shipped payload as Python data (change it freely)."""
    return json.loads(_file(name).read_text(encoding="utf-8"))


def payload_bytes(name: str) -> bytes:
    """The payload as compact JSON bytes, the way a webhook sender would post it."""
    return json.dumps(load_payload(name), separators=(",", ":"), ensure_ascii=False).encode()


def sample_event(kind: str | EventKind, *, source: str | None = None, dedupe_key: str | None = None,
                 **data: Any) -> Event:
    """The canonical event of ``kind``; keyword arguments replace fields of its ``data``.

    Inbound messages and statuses are stamped *now* by the engine's clock (unless ``timestamp``
    is given), so an inbound message opens a current 24-hour window as a real one would, also
    under a clock a test moved (:func:`connectzap.core.clock.use_clock`)."""
    raw = load_payload(f"events/{EventKind(kind).value}")
    if raw["kind"] in ("inbound_message", "message_status"):
        raw["data"]["timestamp"] = iso_utc(utcnow())
    raw["data"].update(data)
    if source is not None:
        raw["source"] = source
    if dedupe_key is not None:
        raw["dedupe_key"] = dedupe_key
    return Event.model_validate(raw)
