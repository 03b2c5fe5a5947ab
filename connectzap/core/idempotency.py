"""Idempotency keys: one key, one message, ever -- within the scope the key was given in.

Keys are scoped by who gave them: the REST API (``api``), a plugin (its name), an event source
(a connector's ``send`` events), the CLI. The same key from two scopes is two messages; every
outbox key is built here, so the format has one owner.
"""

from __future__ import annotations

from .store.outbox import new_message_id


def scoped_key(scope: str, key: str) -> str:
    """The outbox key for ``key`` given by ``scope``."""
    return f"{scope}:{key}"


def unique_key(scope: str) -> str:
    """A key nobody else can hold, for a message sent without one (each call is a new message)."""
    return scoped_key(scope, new_message_id())


def proposal_key(event_id: int, plugin: str, index: int) -> str:
    """The default key of the ``index``-th message ``plugin`` proposed for event ``event_id``
    without a key of its own: stable across retries of that event, so a retry proposes nothing twice."""
    return scoped_key("event", f"{event_id}:{plugin}:{index}")
