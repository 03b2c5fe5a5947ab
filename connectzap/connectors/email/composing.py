"""One outbound send as an email (:class:`email.message.EmailMessage`): headers, the text part and,
when the template has one, the HTML part as ``multipart/alternative``.

The Message-ID is made from the message's own id (``<outbox_id.cz@sender domain>``), so a retry
of the same message carries the same Message-ID and a provider's bounce names it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate

from ...core import clock
from ...core.channel import OutboundSend
from ...core.errors import SkippableDeliveryError
from ...core.messages import TemplateContent, TextContent
from .rendering import Rendered, TemplateRenderer
from .settings import EmailSettings
from .unsubscribe import UnsubscribeLinks, unsubscribe_refusal

SEVEN_BIT = SMTP.clone(cte_type="7bit")
"""Headers RFC 2047-encoded and bodies quoted-printable or base64 when they are not ASCII, so a relay
without 8BITMIME takes the message as it is."""

OUTBOX_VARIABLE = "connectzap_outbox"
POSTMARK_METADATA = f"X-PM-Metadata-{OUTBOX_VARIABLE}"
"""Postmark hands custom ``X-PM-Metadata-*`` headers back in its webhooks' ``Metadata``: the bounce
webhook finds the message by it."""


SENDGRID_SMTPAPI = "X-SMTPAPI"
"""SendGrid reads unique arguments from this header of a message sent through its SMTP relay and
hands them back as top-level fields of each Event Webhook event."""
MAILGUN_VARIABLES = "X-Mailgun-Variables"
"""Mailgun hands the variables of this header back as ``user-variables`` in each webhook."""


def provider_headers(provider: str, outbox_id: str) -> dict[str, str]:
    """The header through which ``provider`` hands the message's id back in its webhooks."""
    if provider == "postmark":
        return {POSTMARK_METADATA: outbox_id}
    variables = {OUTBOX_VARIABLE: outbox_id}
    if provider == "sendgrid":
        return {SENDGRID_SMTPAPI: json.dumps({"unique_args": variables}, separators=(",", ":"))}
    return {MAILGUN_VARIABLES: json.dumps(variables, separators=(",", ":"))}


def message_id_for(outbox_id: str, domain: str) -> str:
    return f"<{outbox_id}.cz@{domain}>"


@dataclass(frozen=True)
class Composed:
    message: EmailMessage
    message_id: str


class Composer:
    def __init__(self, settings: EmailSettings, unsubscribe_key: bytes | None = None) -> None:
        """``unsubscribe_key`` signs the links to connectzap's own unsubscribe; it is required when
        ``unsubscribe_base_url`` is set (the connector derives it from the install's secret)."""
        if settings.unsubscribe_base_url is not None and not unsubscribe_key:
            raise ValueError("unsubscribe_base_url needs a key to sign unsubscribe links with")
        self.settings = settings
        self.unsubscribe_key = unsubscribe_key
        self.renderer = TemplateRenderer(settings.templates_dir, settings.default_language)

    def compose(self, send: OutboundSend, recipient: str) -> Composed:
        """The email for ``send`` to ``recipient`` (a checked bare address). Raises
        :class:`SkippableDeliveryError` when the content cannot be an email or breaks a rule."""
        settings = self.settings
        links = self.links(send)
        rendered = self.render(send, links)
        refusal = unsubscribe_refusal(send.category, links, rendered.text, rendered.html)
        if refusal is not None:  # the sender asked refusal() first; this keeps the rule for any other caller
            raise SkippableDeliveryError(refusal, code="unsubscribe_missing")
        message_id = message_id_for(send.outbox_id, settings.sender_domain)
        mail = EmailMessage(policy=SEVEN_BIT)
        mail["From"] = settings.from_address
        mail["To"] = recipient
        mail["Subject"] = rendered.subject
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = message_id
        if settings.reply_to:
            mail["Reply-To"] = settings.reply_to
        if send.category == "marketing":
            for name, value in links.headers().items():
                mail[name] = value
        for name, value in provider_headers(settings.webhook_provider, send.outbox_id).items():
            mail[name] = value
        mail.set_content(rendered.text)
        if rendered.html is not None:
            mail.add_alternative(rendered.html, subtype="html")
        return Composed(mail, message_id)

    def links(self, send: OutboundSend) -> UnsubscribeLinks:
        settings = self.settings
        if settings.unsubscribe_base_url is not None and self.unsubscribe_key:
            if not send.contact_key:  # nobody to unsubscribe: the mailbox alone, if any (else refused)
                return UnsubscribeLinks(mailto=settings.list_unsubscribe_mailto)
            expires = int(clock.now()) + settings.unsubscribe_valid_days * 86400
            return UnsubscribeLinks.served(settings.list_unsubscribe_mailto, settings.unsubscribe_base_url,
                                           self.unsubscribe_key, send.contact_key, send.category, send.medium,
                                           expires)
        return UnsubscribeLinks.for_message(settings.list_unsubscribe_mailto, settings.list_unsubscribe_url,
                                            send.outbox_id)

    def refusal(self, send: OutboundSend) -> str | None:
        """Why ``send`` breaks the email channel's rule (a marketing email shows its unsubscribe link),
        or None. Content that cannot be rendered is not refused here: the send fails with its reason."""
        if send.category != "marketing":
            return None
        links = self.links(send)
        try:
            rendered = self.render(send, links)
        except SkippableDeliveryError:
            return None
        return unsubscribe_refusal(send.category, links, rendered.text, rendered.html)

    def render(self, send: OutboundSend, links: UnsubscribeLinks) -> Rendered:
        content = send.content
        if isinstance(content, TextContent):
            return Rendered(subject=self.settings.default_subject, text=content.body)
        if isinstance(content, TemplateContent):
            extra = {"unsubscribe_url": links.in_body() or ""}
            return self.renderer.render(content, extra)
        raise SkippableDeliveryError(f"an email carries text or a template, not {content.type!r} content",
                                     code="unsupported_content")
