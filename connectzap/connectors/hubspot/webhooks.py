"""``POST /webhooks/hubspot``: authenticate, then turn deliveries into thin ``resolve`` events.

Two kinds of delivery arrive here:

* **App webhooks** -- a JSON array of events, signed with the app's client secret
  (``X-HubSpot-Signature-v3`` + ``X-HubSpot-Request-Timestamp``, or the older
  ``X-HubSpot-Signature`` with ``X-HubSpot-Signature-Version`` v1/v2).
  A note's creation (``object.creation`` of objectTypeId ``0-46``) may be an agent's WhatsApp
  reply (:mod:`.agent_replies`).
* **Workflow "Send a webhook" actions** -- one JSON object about one record, authenticated by a
  shared secret in a header or query parameter (or signed like an app webhook).

The payloads carry ids only. Fetching the contact is not done here (HubSpot gives us seconds to
answer): each relevant event is journaled as a ``resolve`` event that the connector completes
later (:meth:`HubSpotConnector.resolve`). ``eventId`` is not unique, so the dedupe key is
(portal, subscription type, object id, occurredAt, property).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ...core.errors import PayloadError, SignatureError
from ...core.models import Event, EventKind, Model
from ...core.signatures import verify_shared_secret
from ..base import WebhookRequest, secret_value
from . import agent_replies, signatures
from .settings import HubSpotSettings

SOURCE = "hubspot"
CONTACT_TYPE_ID = "0-1"  # objectTypeId of contacts in generic (object.*) subscriptions


class ContactNotice(Model):
    """The data of a HubSpot ``resolve`` event: which contact to fetch, and why."""

    portal_id: str
    object_id: str
    purpose: str  # "lead", "consent", "send" or "reply" (then ``object_id`` is the note's id)
    trigger: str
    property: str | None = None
    value: Any = None
    occurred_at: int | None = None
    change_source: str | None = None
    send: str | None = None
    """For a "Send WhatsApp" workflow action: the ``workflow_sends`` entry it names."""
    values: dict[str, str] | None = None
    """Of that action: the template parameters its customised body carried (only those)."""



def verify(settings: HubSpotSettings, request: WebhookRequest) -> None:
    """Raise :class:`SignatureError` unless a HubSpot signature or the workflow secret checks out."""
    client_secrets = [secret_value(s) for s in settings.client_secrets]
    v3 = request.header("x-hubspot-signature-v3")
    signature = request.header("x-hubspot-signature")
    if v3 is not None:
        _allowed(settings, "v3")
        signatures.verify_hubspot_v3(request.method, request.url, request.body, v3,
                                     request.header("x-hubspot-request-timestamp"), client_secrets,
                                     tolerance=settings.signature_tolerance_seconds)
        return
    if signature is not None:
        version = (request.header("x-hubspot-signature-version") or "v1").strip().lower()
        _allowed(settings, version)
        if version == "v1":
            signatures.verify_hubspot_v1(request.body, signature, client_secrets)
        else:
            signatures.verify_hubspot_v2(request.method, request.url, request.body, signature, client_secrets)
        return
    given = request.header(settings.workflow_key_name) if settings.workflow_key_location == "header" \
        else request.query.get(settings.workflow_key_name)
    if given is None:
        raise SignatureError("no HubSpot signature and no workflow secret")
    verify_shared_secret(given, [secret_value(s) for s in settings.workflow_secrets])


def _allowed(settings: HubSpotSettings, version: str) -> None:
    if version not in settings.signature_versions:
        raise SignatureError(f"signature version {version} is not accepted")


def parse(settings: HubSpotSettings, request: WebhookRequest) -> list[Event]:
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise PayloadError("body is not JSON", field="body") from None
    if isinstance(body, list):
        return [e for i, item in enumerate(body) if (e := app_event(settings, item, i)) is not None]
    if isinstance(body, dict):
        send = request.query.get("send")
        return [workflow_event(settings, body, request.body) if send is None
                else workflow_send_event(settings, body, request.body, send)]
    raise PayloadError("expected a JSON array of events or a workflow object", field="body")


def _required(item: dict[str, Any], name: str, index: int) -> Any:
    value = item.get(name)
    if value in (None, ""):
        raise PayloadError(f"event {index} has no {name}", field=f"[{index}].{name}")
    return value


def app_event(settings: HubSpotSettings, item: Any, index: int) -> Event | None:
    """One app webhook event -> a resolve event, or None when it is not one we act on."""
    if not isinstance(item, dict):
        raise PayloadError(f"event {index} is not an object", field=f"[{index}]")
    kind = str(_required(item, "subscriptionType", index))
    object_id = str(_required(item, "objectId", index))
    portal = str(_required(item, "portalId", index))
    occurred = _required(item, "occurredAt", index)
    family, _, action = kind.partition(".")
    if family == "object" and str(item.get("objectTypeId")) == agent_replies.NOTE_TYPE_ID:
        return note_event(settings, portal, kind, action, object_id, occurred)
    is_contact = family == "contact" or (family == "object" and str(item.get("objectTypeId")) == CONTACT_TYPE_ID)
    if not is_contact:
        return None
    prop, value = item.get("propertyName"), item.get("propertyValue")
    purpose = _purpose(settings, action, prop, value)
    if purpose is None:
        return None
    data = {"portal_id": portal, "object_id": object_id, "purpose": purpose, "trigger": kind,
            "property": prop, "value": value, "occurred_at": occurred, "change_source": item.get("changeSource")}
    dedupe = f"{portal}:{kind}:{object_id}:{occurred}:{prop or ''}"
    return Event(kind=EventKind.RESOLVE, source=SOURCE, dedupe_key=dedupe,
                 ordering_key=ordering_key(portal, object_id),
                 data={k: v for k, v in data.items() if v is not None})


def note_event(settings: HubSpotSettings, portal: str, kind: str, action: str, note_id: str,
               occurred: Any) -> Event | None:
    """A note created in HubSpot may be an agent's WhatsApp reply: fetched later (the webhook names
    only the note), when ``agent_replies`` is on."""
    if action != "creation" or not settings.agent_replies:
        return None
    return Event(kind=EventKind.RESOLVE, source=SOURCE, dedupe_key=f"{portal}:{kind}:note:{note_id}:{occurred}",
                 ordering_key=f"{SOURCE}:{portal}:note:{note_id}",
                 data={"portal_id": portal, "object_id": note_id, "purpose": "reply", "trigger": kind,
                       "occurred_at": occurred})


def ordering_key(portal: str, object_id: str) -> str:
    """Everything about one HubSpot contact (its webhooks, then the lead they resolve to) is
    applied in journal order, one event at a time."""
    return f"{SOURCE}:{portal}:contact:{object_id}"


def _purpose(settings: HubSpotSettings, action: str, prop: str | None, value: Any) -> str | None:
    if action == "creation":
        return "lead" if settings.lead_on_creation else None
    if action != "propertyChange":
        return None
    if any(trigger.matches(prop, value) for trigger in settings.lead_triggers):
        return "lead"
    if any(rule.property == prop or rule.legal_basis_property == prop for rule in settings.consent.values()):
        return "consent"
    return None


def workflow_event(settings: HubSpotSettings, body: dict[str, Any], raw: bytes) -> Event:
    """A workflow delivery names one contact: the full legacy contact JSON or a custom body."""
    properties = body.get("properties")
    props: dict[str, Any] = properties if isinstance(properties, dict) else {}
    candidates = [body.get("objectId"), body.get("vid"), body.get("hs_object_id"), body.get("contactId"),
                  _value(props.get("hs_object_id"))]
    object_id = next((str(c) for c in candidates if c not in (None, "")), None)
    if object_id is None:
        raise PayloadError("workflow body names no contact: include objectId, vid or hs_object_id",
                           field="objectId")
    portal = str(body.get("portalId") or body.get("portal-id") or settings.portal_id or "0")
    # No event time in a workflow body: the same bytes again are the same delivery.
    digest = hashlib.sha256(raw).hexdigest()[:24]
    return Event(kind=EventKind.RESOLVE, source=SOURCE, dedupe_key=f"{portal}:workflow:{object_id}:{digest}",
                 ordering_key=ordering_key(portal, object_id),
                 data={"portal_id": portal, "object_id": object_id, "purpose": "lead", "trigger": "workflow"})


def workflow_send_event(settings: HubSpotSettings, body: dict[str, Any], raw: bytes, send: str) -> Event:
    """A "Send WhatsApp" workflow action (``?send=NAME``): which contact, and the template
    parameters the body carries; nothing else of the body is kept."""
    action = settings.workflow_sends.get(send)
    if action is None:
        known = ", ".join(sorted(settings.workflow_sends)) or "none configured"
        raise PayloadError(f"no workflow send named {send!r} in [connectors.hubspot.workflow_sends] ({known})",
                           field="send")
    lead = workflow_event(settings, body, raw)
    properties = body.get("properties")
    props: dict[str, Any] = properties if isinstance(properties, dict) else {}
    values = {name: str(v) for name in action.params
              if (v := _value(body.get(name, props.get(name)))) not in (None, "")}
    data = {**lead.data, "purpose": "send", "send": send, "values": values}
    dedupe = lead.dedupe_key.replace(":workflow:", f":send:{send}:")
    return Event(kind=EventKind.RESOLVE, source=SOURCE, dedupe_key=dedupe, ordering_key=lead.ordering_key, data=data)


def _value(prop: Any) -> Any:
    return prop.get("value") if isinstance(prop, dict) else prop
