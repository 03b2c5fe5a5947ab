"""The kinds of automatic answer, in precedence order (:class:`AutomaticAnswer`), and the reasons
one is not sent. The rules live in :mod:`.arbitration`."""

from __future__ import annotations

from enum import StrEnum


class AutomaticAnswer(StrEnum):
    """What kind of automatic answer a message is, in precedence order: when several answer one
    inbound message, the first kind in this order is sent and the others are not."""

    keyword = "keyword"
    """Confirmation of a keyword the customer sent: consent (opt-in/out) or handoff."""
    faq = "faq"
    """An answer to a frequent question (``auto_replies``)."""
    chatbot = "chatbot"
    """An external bot's answer."""
    away = "away"
    """Closed now: when the business opens again."""
    welcome = "welcome"
    """A greeting on the first message (or after a long silence)."""
    fallback = "fallback"
    """Sent only when no other automatic answer goes: e.g. a chatbot that timed out says a person
    will answer, unless an FAQ rule or the away message answers instead."""

    @property
    def rank(self) -> int:
        return list(AutomaticAnswer).index(self)


PENDING = "automatic_pending"
"""The reason an automatic answer shows while it waits for the other answers to its message."""

NEVER = 1e18
"""``next_attempt_at`` of a held answer: the sender never finds it due."""

REASONS = {
    PENDING: "waiting for the other plugins' answers to the same inbound message",
    "automatic_superseded": "another automatic answer to the same inbound message went instead",
    "human_handling": "a person is handling this conversation: no automatic answers",
    "stale_inbound": "the inbound message is older than the staleness limit: no automatic answer",
    "already_answered": "this inbound message already had its automatic answer",
}
