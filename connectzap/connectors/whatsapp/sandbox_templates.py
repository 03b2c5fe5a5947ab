"""Message templates on the sandbox: a local stand-in for the business account's template list.

Without Cloud API credentials, ``connectzap templates create|list|show|sync|delete`` work on this
store instead of Meta's. A new template is checked as Meta checks it (:mod:`.template_rules`),
starts PENDING, and its review ends ``[sandbox] template_approval_seconds`` later. The outcome is
journaled at creation, due at that moment, as the event Meta's ``message_template_status_update``
webhook makes (the same parser builds it), so the gate's template cache changes through the
normal path when a worker (``connectzap serve``) takes it. ``templates sync`` copies the store
into the cache, as it copies Meta's list when live.

The store is durable engine state (``plugin_state`` under :data:`STORE`), one row per name and
language, so it works on SQLite and PostgreSQL alike and needs no table of its own.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ...core import templates as cache
from ...core.errors import ConflictError, NotFoundError
from ...core.models import TemplateInfo
from ...core.store import journal
from ...core.store.database import now
from ...core.store.schema import plugin_state
from . import template_rules, webhooks

if TYPE_CHECKING:
    from ...core.app import Connectzap

STORE = "whatsapp:sandbox-templates"
WABA_ID = "sandbox"
"""The business account id the sandbox's templates carry in the cache (and in its status events)."""


@dataclass(frozen=True)
class SandboxTemplate:
    """One template as the sandbox's "business account" holds it."""

    id: str
    name: str
    language: str
    category: str
    parameter_format: str
    components: list[dict[str, Any]]
    created_at: float
    review_at: float
    verdict: str
    reason: str
    explanation: str | None = None

    def status(self, at: float | None = None) -> str:
        return "PENDING" if (now() if at is None else at) <= self.review_at else self.verdict

    def info(self, at: float | None = None) -> TemplateInfo:
        return TemplateInfo(name=self.name, language=self.language, status=self.status(at), category=self.category,
                            # stored as create() checked it; the model checks it again
                            parameter_format=self.parameter_format,  # type: ignore[arg-type]
                            components=self.components, id=self.id, waba_id=WABA_ID)


def _key(name: str, language: str) -> str:
    return f"template:{name}:{language}"


def stored(app: Connectzap, name: str | None = None) -> list[SandboxTemplate]:
    """The sandbox's templates (every language of ``name``, or all), by name and language."""
    query = select(plugin_state.c.value).where(plugin_state.c.plugin == STORE)
    if name is not None:
        query = query.where(plugin_state.c.key.startswith(f"template:{name}:", autoescape=True))
    with app.db.read() as conn:
        rows = [SandboxTemplate(**json.loads(row.value)) for row in conn.execute(query)]
    return sorted(rows, key=lambda t: (t.name, t.language))


def status_update_body(template: SandboxTemplate, at: float) -> bytes:
    """The ``message_template_status_update`` webhook Meta sends when a review ends."""
    value: dict[str, Any] = {"event": template.verdict, "message_template_id": int(template.id),
                             "message_template_name": template.name,
                             "message_template_language": template.language, "reason": template.reason,
                             "message_template_category": template.category}
    if template.verdict == "REJECTED" and template.explanation:
        value["rejection_info"] = {"reason": template.explanation,
                                   "recommendation": template_rules.ADJACENT_RECOMMENDATION}
    document = {"object": "whatsapp_business_account",
                "entry": [{"id": WABA_ID, "time": int(at),
                           "changes": [{"field": "message_template_status_update", "value": value}]}]}
    return json.dumps(document).encode()


def create(app: Connectzap, definition: dict[str, Any]) -> SandboxTemplate:
    """Check ``definition`` as Meta would, store it PENDING, cache it, and journal the end of its review."""
    review = template_rules.check(definition)
    name, language = definition["name"], definition["language"]
    t = now()
    template = SandboxTemplate(
        id=str(10**14 + secrets.randbelow(9 * 10**14)), name=name, language=language,
        category=str(definition["category"]).upper(),
        parameter_format=str(definition.get("parameter_format") or "POSITIONAL").upper(),
        components=definition["components"], created_at=t,
        review_at=t + app.settings.sandbox.template_approval_seconds,
        verdict=review.status, reason=review.reason, explanation=review.explanation)
    outcome = webhooks.parse_body(status_update_body(template, template.review_at))
    with app.db.begin() as conn:
        exists = conn.execute(select(plugin_state.c.key).where(plugin_state.c.plugin == STORE,
                                                               plugin_state.c.key == _key(name, language))).first()
        if exists:
            raise ConflictError(f"template {name} already exists in {language} on the sandbox "
                                f"(delete it first: connectzap templates delete {name})")
        conn.execute(plugin_state.insert().values(plugin=STORE, key=_key(name, language),
                                                  value=json.dumps(template.__dict__), updated_at=t))
        cache.put(app.db, conn, template.info(t))
        journal.append(app.db, conn, outcome, due_at=template.review_at)
    return template


def sync(app: Connectzap) -> tuple[int, int]:
    """Copy the sandbox's templates into the cache, as ``templates sync`` copies Meta's. Returns
    (kept, removed)."""
    current = stored(app)
    keep = {(t.name, t.language) for t in current}
    removed = 0
    with app.db.begin() as conn:
        for template in current:
            cache.put(app.db, conn, template.info())
        for old in cache.all_templates(conn):
            if old.waba_id == WABA_ID and (old.name, old.language) not in keep:
                removed += cache.delete(conn, old.name, old.language, WABA_ID)
    return len(current), removed


def delete(app: Connectzap, name: str) -> int:
    """Delete every language of ``name`` from the sandbox and the cache."""
    with app.db.begin() as conn:
        gone = conn.execute(plugin_state.delete().where(
            plugin_state.c.plugin == STORE,
            plugin_state.c.key.startswith(f"template:{name}:", autoescape=True))).rowcount
        if not gone:
            raise NotFoundError(f"the sandbox has no template {name}")
        return cache.delete(conn, name)
