"""An agent's reply written in HubSpot, sent to the contact on WhatsApp: a note on the contact whose
text starts with ``agent_reply_prefix`` (``WhatsApp:`` by default).

Why a note: HubSpot's own WhatsApp inbox needs Marketing or Service Hub Professional, and a
workflow's "Send a webhook" action needs Data Hub Professional. A note can be written on any portal,
and an app's webhook subscription to note creation (``object.creation``, objectTypeId ``0-46``) is
delivered on every tier, signed with the app's client secret like every app webhook.

The webhook carries the note's id only. The edge journals a thin ``resolve`` notice; the worker
fetches the note (its text and the contacts it is on) and the contact (number, consent properties),
and journals a ``reply`` event keyed by the note's id, so a note HubSpot delivers again is sent once.
The core then sends the text inside the customer's 24-hour window and the ``[replies]`` template
outside it, and hands the conversation to people. What became of it goes on the contact's timeline.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from ...core.models import Contact
from ...core.replies import ReplyRequest, configured_fallback
from .client import HubSpotClient, HubSpotNotFound
from .settings import HubSpotSettings

SOURCE = "hubspot"
NOTE_TYPE_ID = "0-46"  # objectTypeId of notes in generic (object.*) webhook subscriptions
MAX_TEXT = 4096  # WhatsApp's limit on a text message's body
NOT_SENT = "⛔ WhatsApp reply not sent"
NO_NUMBER = "The contact has no valid WhatsApp number (or BSUID) in {properties}: nothing was sent."
TOO_LONG = ("The reply has {length:,} characters; a WhatsApp message takes 4,096. Nothing was sent: write it "
            "again in shorter notes.")
SEVERAL_CONTACTS = "A WhatsApp reply goes to one contact; this note is on {count}. Nothing was sent."

_BREAKS = re.compile(r"<\s*(br|/p|/div|/li)\b[^>]*>", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]+>")


def note_text(body: str | None) -> str:
    """The text of a note as the agent typed it: HubSpot stores ``hs_note_body`` as HTML."""
    text = _TAGS.sub("", _BREAKS.sub("\n", body or ""))
    lines = [html.unescape(line).replace("\xa0", " ").strip() for line in text.splitlines()]
    return "\n".join(lines).strip()


def reply_text(settings: HubSpotSettings, body: str | None) -> str | None:
    """The reply a note asks to send (the text after the prefix), or None: not a WhatsApp reply."""
    text = note_text(body)
    prefix = settings.agent_reply_prefix
    if not text[:len(prefix)].casefold() == prefix.casefold():
        return None
    return text[len(prefix):].strip() or None


@dataclass(frozen=True)
class Note:
    """A note fetched from HubSpot: its id, its HTML body and the contacts it is on."""

    id: str
    body: str | None
    contact_ids: list[str]


async def fetch_note(client: HubSpotClient, note_id: str) -> Note | None:
    """The note with its body and the contacts it is on, or None when it was deleted meanwhile."""
    try:
        found = await client.call("get note", client.notes.get_by_id, note_id, properties=["hs_note_body"],
                                  associations=["contacts"])
    except HubSpotNotFound:
        return None
    linked = (found.associations or {}).get("contacts")
    contact_ids = list(dict.fromkeys(str(a.id) for a in (linked.results if linked else None) or []))
    return Note(str(found.id), (found.properties or {}).get("hs_note_body"), contact_ids)


def reply_of(settings: HubSpotSettings, portal: str, note: Note, text: str, contact_id: str,
             contact: dict[str, Any], to: Contact) -> ReplyRequest:
    """The reply to journal: keyed by the note (sent once, however often HubSpot delivers it), with
    the fallback template (``agent_reply_template``, else ``[replies]``'s) filled from the contact's
    ``agent_reply_params`` properties."""
    props: dict[str, Any] = contact["properties"]
    # An empty property leaves its parameter out: the gate then refuses the template, saying why.
    params = [value[:1024] for name in settings.agent_reply_params if (value := str(props.get(name) or "").strip())]
    fallback = configured_fallback(settings.agent_reply_template, settings.agent_reply_language, params)
    return ReplyRequest(to=to, text=text, fallback=fallback, fallback_params=[] if fallback else params,
                        origin={"source": SOURCE, "portal": portal, "contact": contact_id, "note": note.id},
                        idempotency_key=f"{portal}:note:{note.id}", by=SOURCE)


def outcome(message: dict[str, Any] | None) -> tuple[str, str]:
    """The timeline's heading and text for what became of a reply (the message the gate admitted or
    refused for it, None when there is none)."""
    if message is None:
        return NOT_SENT, "No message was admitted for this note."
    if message["status"] == "refused":
        why = message.get("error_details") or message.get("reason") or "refused"
        return NOT_SENT, f"{message.get('reason')}: {why}"
    if message["content_type"] == "template":
        return ("✉ WhatsApp reply sent as a template",
                f"The customer's 24-hour window is closed, so your text could not go: they get the template "
                f"{message['template_name']} instead, which tells them there is a new message. Once "
                "they answer, a new note goes as written.")
    return "✉ WhatsApp reply sent", "Sent as written: the customer's 24-hour window is open."
