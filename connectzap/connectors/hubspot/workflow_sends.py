"""A "Send WhatsApp" workflow action: a workflow webhook with ``?send=NAME`` sends the enrolled
contact the template ``[connectors.hubspot.workflow_sends.NAME]`` names.

The webhook edge keeps the contact's id and the parameters the body carried; the ``resolve``
delivery fetches the contact (number, consent properties, parameters) and journals a ``send``
event, which the core admits through the gate -- consent for the template's category included.
What became of it goes on the contact's timeline: the message itself once WhatsApp accepted it
(as every outbound message), or why it was not sent.
"""

from __future__ import annotations

from typing import Any

from ...core.errors import SkippableError
from ...core.messages import Outgoing
from ...core.models import ConsentChange, Event, EventKind
from .settings import HubSpotSettings

SOURCE = "hubspot"


def send_event(settings: HubSpotSettings, data: dict[str, Any], contact: dict[str, Any], phone: str,
               consents: list[ConsentChange], base: str, ordering_key: str) -> Event:
    """The ``send`` event of one workflow action, carrying the consents the contact states."""
    action = settings.workflow_sends.get(str(data.get("send")))
    if action is None:
        raise SkippableError(f"no workflow send named {data.get('send')} is configured any more", code="not_configured")
    given: dict[str, Any] = data.get("values") or {}
    props: dict[str, Any] = contact["properties"]
    params = []
    for name in action.params:
        value = given.get(name) or props.get(name)
        if value in (None, ""):
            raise SkippableError(f"{action.template} needs {name}, which neither the workflow body nor HubSpot "
                                 f"contact {data['object_id']} has", code="param_missing")
        params.append(str(value))
    outgoing = Outgoing.model_validate({
        "to": phone, "content": {"type": "template", "name": action.template, "language": action.language,
                                 "body": params},
        "idempotency_key": f"{base}:send",
        "origin": {"source": SOURCE, "portal": str(data["portal_id"]), "contact": str(data["object_id"]),
                   "send": str(data["send"])}})
    return Event.of(EventKind.SEND, outgoing, source=SOURCE, dedupe_key=f"{base}:send", consents=consents,
                    ordering_key=ordering_key)


def refusal_text(message: dict[str, Any]) -> str:
    """The timeline's words for a workflow send the gate refused."""
    why = message.get("error_details") or message.get("reason") or "refused"
    return f"{message.get('template_name') or 'template'} not sent ({message.get('reason')}): {why}"
