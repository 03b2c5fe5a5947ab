"""Marketing email's unsubscribe: the ``List-Unsubscribe`` headers (RFC 2369, one-click RFC 8058)
and the email channel's own rule that a marketing email shows an unsubscribe link in its body.

Both are pure functions over the settings and the rendered body. The channel declares the rule as
its :meth:`~connectzap.core.channel.MediumRules.refusal`, which the sender asks before each send.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.models import Category
from .signatures import sign_unsubscribe

ONE_CLICK = "List-Unsubscribe=One-Click"
ROUTE = "/unsubscribe/email/{token}"
"""connectzap's own one-click unsubscribe (``unsubscribe_base_url``): GET shows a confirmation page,
POST unsubscribes (:mod:`.unsubscribe_page`)."""


def served_url(base_url: str, token: str) -> str:
    """The address of connectzap's own unsubscribe for ``token``, under ``base_url``."""
    return base_url + ROUTE.format(token=token)


@dataclass(frozen=True)
class UnsubscribeLinks:
    """Where one message's reader unsubscribes: a mailbox, an https address, or both."""

    mailto: str | None = None
    url: str | None = None

    @classmethod
    def for_message(cls, mailto: str | None, url_pattern: str | None, outbox_id: str) -> UnsubscribeLinks:
        return cls(mailto=mailto, url=url_pattern.format(outbox_id=outbox_id) if url_pattern else None)

    @classmethod
    def served(cls, mailto: str | None, base_url: str, key: bytes, contact_key: str, category: str, medium: str,
               expires: int) -> UnsubscribeLinks:
        """Links to connectzap's own unsubscribe: a token signed over the contact's keyed hash, the
        category and the medium, valid until ``expires`` (seconds since the epoch)."""
        token = sign_unsubscribe(contact_key, category, medium, expires, key)
        return cls(mailto=mailto, url=served_url(base_url, token))

    @property
    def configured(self) -> bool:
        return bool(self.mailto or self.url)

    def headers(self) -> dict[str, str]:
        """``List-Unsubscribe`` (https first: clients prefer it) and, with an https address,
        ``List-Unsubscribe-Post`` asking for RFC 8058's one-click POST. Nothing when unconfigured."""
        targets = [f"<{self.url}>"] if self.url else []
        if self.mailto:
            targets.append(f"<mailto:{self.mailto}?subject=unsubscribe>")
        out = {"List-Unsubscribe": ", ".join(targets)} if targets else {}
        if self.url:
            out["List-Unsubscribe-Post"] = ONE_CLICK
        return out

    def in_body(self) -> str | None:
        """What a body must contain to show the reader a way out: the https address, else the mailbox."""
        return self.url or (f"mailto:{self.mailto}" if self.mailto else None)


def unsubscribe_refusal(category: str, links: UnsubscribeLinks, text: str, html: str | None) -> str | None:
    """Why a message may not go out under the email channel's rule, or None when it may: a marketing
    email needs unsubscribe addresses configured and the link in every body it has (the HTML one
    escapes ``&`` in a URL, so the escaped form counts too)."""
    if category != Category.MARKETING.value:
        return None
    needle = links.in_body()
    if needle is None:
        return ("a marketing email needs list_unsubscribe_url or list_unsubscribe_mailto in [connectors.email]: "
                "it must carry an unsubscribe link")
    bodies = {"text": text} if html is None else {"text": text, "html": html}
    for part, body in bodies.items():
        forms = (needle, needle.replace("&", "&amp;")) if part == "html" else (needle,)
        if not any(form in body for form in forms):
            return (f"a marketing email must show its unsubscribe link ({{{{ unsubscribe_url }}}}) in its {part} "
                    "body, and this one does not")
    return None
