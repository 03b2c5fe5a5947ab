"""connectzap's own one-click unsubscribe (``unsubscribe_base_url``): ``/unsubscribe/email/{token}``.

* ``GET`` shows a small confirmation page with one button. It changes nothing: mail scanners and
  link previewers fetch every link in an email, and must not unsubscribe anyone by doing so.
* ``POST`` with RFC 8058's body (``List-Unsubscribe=One-Click``: what a mail client's
  "Unsubscribe" button sends, and what the page's button sends) withdraws the consent the token
  names -- a ``consent_changed`` event for the contact's keyed hash, so the ledger records it with
  its source and proof like any other opt-out. The event's dedupe key names the token, so the same
  POST again (a client retrying, a double click) changes nothing more.

A token that is malformed, forged or expired gets a page saying so, and nothing is journaled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from ...core import media, ordering
from ...core.connector import WebhookRequest, WebhookResponse
from ...core.errors import PayloadError
from ...core.models import Category, ConsentChange, Event, EventKind
from .signatures import UnsubscribeClaim

PREFIX = "/unsubscribe/email/"
CONSENT_SOURCE = "email:unsubscribe"
PROOF = "used the one-click unsubscribe link of a marketing email (List-Unsubscribe, RFC 8058)"


def is_unsubscribe(request: WebhookRequest) -> bool:
    return request.path.startswith(PREFIX)


def token_of(request: WebhookRequest) -> str:
    return request.path_params.get("token") or request.path[len(PREFIX):]


def one_click_body(body: bytes) -> bool:
    """Whether a POST carries RFC 8058's ``List-Unsubscribe=One-Click`` (form-urlencoded, or the
    same field as ``multipart/form-data``)."""
    return b"List-Unsubscribe" in body and b"One-Click" in body


def _page(title: str, paragraphs: list[str], status: int, form: bool = False) -> WebhookResponse:
    """A small page that works without scripts, styles or images, with one heading and, for the
    confirmation, a form whose button POSTs the one-click body to the same address."""
    body = "".join(f"<p>{escape(text)}</p>" for text in paragraphs)
    if form:
        body += ('<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
                 '<button type="submit">Unsubscribe</button></form>')
    html = ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="robots" content="noindex">'
            f"<title>{escape(title)}</title></head><body><main><h1>{escape(title)}</h1>{body}</main></body></html>")
    return WebhookResponse(status=status, body=html, content_type="text/html; charset=utf-8")


def confirmation_page(sender: str, claim: UnsubscribeClaim) -> WebhookResponse:
    what = f"{claim.category} email" if claim.category != Category.MARKETING.value else "marketing email"
    return _page("Unsubscribe", [f"Stop receiving {what} from {sender}?",
                                 "Messages about your orders and your account keep coming."], 200, form=True)


def done_page(sender: str) -> WebhookResponse:
    return _page("You are unsubscribed", [f"{sender} will send you no more marketing email.",
                                          "You can close this page."], 200)


def invalid_page(mailto: str | None) -> WebhookResponse:
    lines = ["This unsubscribe link is not valid or has expired. Nothing was changed."]
    if mailto:
        lines.append(f"To unsubscribe, write to {mailto} with the subject 'unsubscribe'.")
    return _page("Link not valid", lines, 400)


def wrong_method_page() -> WebhookResponse:
    return _page("Use the button", ["Open this link in a browser and press the Unsubscribe button."], 400)


def unsubscribe_events(claim: UnsubscribeClaim, at: float, source: str) -> list[Event]:
    """The opt-out ``claim`` asks for, journaled by connector ``source``."""
    try:
        category = Category(claim.category)
        medium = media.checked(claim.medium)
    except ValueError:
        raise PayloadError("the unsubscribe link names an unknown category or medium", field="token") from None
    when = datetime.fromtimestamp(at, UTC)
    change = ConsentChange(contact_key=claim.contact_key, category=category, granted=False, source=CONSENT_SOURCE,
                           proof=PROOF, at=when, medium=medium)
    dedupe = f"unsubscribe:{claim.contact_key}:{category.value}:{medium}:{claim.reference}"
    return [Event.of(EventKind.CONSENT_CHANGED, change, source=source, dedupe_key=dedupe, occurred_at=when,
                     ordering_key=ordering.contact(claim.contact_key))]
