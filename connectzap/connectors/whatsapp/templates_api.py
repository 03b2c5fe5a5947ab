"""Message templates on the WhatsApp Business Account (``/{waba-id}/message_templates``),
kept in step with the template cache the send gate checks (:mod:`connectzap.core.templates`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...core import templates as cache
from ...core.errors import ConfigurationError, PayloadError
from ...core.models import TemplateInfo
from .client import GraphClient
from .sandbox_templates import WABA_ID as SANDBOX_WABA
from .settings import MARKETING_TTL, TEMPLATE_TTL

if TYPE_CHECKING:
    from ...core.app import Connectzap

FIELDS = "id,name,language,status,category,parameter_format,components,quality_score"


def _waba(client: GraphClient) -> str:
    if not client.settings.waba_id:
        raise ConfigurationError("connectors.whatsapp.waba_id is not set: templates live on the business account")
    return client.settings.waba_id


def to_info(item: dict[str, Any], waba_id: str | None) -> TemplateInfo:
    return TemplateInfo(name=item["name"], language=item.get("language", ""), status=item.get("status", "PENDING"),
                        category=item.get("category", "UTILITY"),
                        # Meta's word, checked by the model: anything but POSITIONAL/NAMED is refused there
                        parameter_format=str(item.get("parameter_format") or "POSITIONAL").upper(),  # type: ignore[arg-type]
                        components=item.get("components") or [], id=item.get("id"), waba_id=waba_id,
                        quality=_quality(item.get("quality_score")))


def _quality(score: Any) -> str | None:
    """``quality_score`` as Meta returns it (``{"score": "GREEN", "date": ...}``): its rating."""
    value = score.get("score") if isinstance(score, dict) else None
    return str(value).upper() if value else None


async def fetch_all(client: GraphClient, name: str | None = None) -> list[TemplateInfo]:
    """Every template on the account (every page), optionally only those called ``name``."""
    waba = _waba(client)
    params: dict[str, Any] = {"fields": FIELDS, "limit": 100}
    if name:
        params["name"] = name
    return [to_info(item, waba) for item in await client.get_all(f"{waba}/message_templates", params)]


async def sync(client: GraphClient, app: Connectzap) -> tuple[int, int]:
    """Replace this account's cached templates with the remote ones. Returns (kept, removed)."""
    waba = _waba(client)
    remote = await fetch_all(client)
    keep = {(t.name, t.language) for t in remote}
    removed = 0
    with app.db.begin() as conn:
        for info in remote:  # kept under this account's WABA: another account's of the same name stays
            cache.put(app.db, conn, info)
        for old in cache.all_templates(conn):
            # The sandbox's templates go too (the live account cannot send them), and any of no
            # particular account: the account's own now stand for them.
            if old.waba_id in (None, SANDBOX_WABA) or (old.waba_id == waba and (old.name, old.language) not in keep):
                gone = cache.delete(conn, old.name, old.language, old.waba_id or cache.ANY_ACCOUNT)
                removed += gone if (old.name, old.language) not in keep else 0  # else replaced, not removed
    return len(remote), removed


def read_definition(path: str | Path) -> dict[str, Any]:
    """A template definition file (JSON): name, language, category, components[, parameter_format]."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PayloadError(f"cannot read {path}: {exc.strerror}", field="file") from None
    except ValueError as exc:
        raise PayloadError(f"{path} is not valid JSON: {exc}", field="file") from None
    if not isinstance(data, dict):
        raise PayloadError(f"{path} must hold one JSON object", field="file")
    missing = [k for k in ("name", "language", "category", "components") if not data.get(k)]
    if missing:
        raise PayloadError(f"{path} is missing {', '.join(missing)}", field=missing[0])
    return data


def checked_ttl(category: str, seconds: Any) -> int:
    """``seconds`` as a template's ``message_send_ttl_seconds``, or a :class:`PayloadError` naming
    Meta's bounds for ``category``: marketing 12 h to 30 days (honoured on the Marketing Messages API
    only), utility 30 s to 12 h, authentication 30 s to 15 min; -1 (30 days) for the latter two."""
    low, high = TEMPLATE_TTL.get(category.upper(), MARKETING_TTL)
    allowed = low <= seconds <= high or (seconds == -1 and category.upper() != "MARKETING")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not allowed:
        raise PayloadError(f"message_send_ttl_seconds of a {category.upper()} template must be {low} to {high} "
                           f"seconds, not {seconds!r}", field="message_send_ttl_seconds")
    return seconds


def with_ttl(definition: dict[str, Any], marketing_ttl: int | None) -> dict[str, Any]:
    """``definition`` with its time-to-live checked, and ``[connectors.whatsapp] marketing_ttl_seconds``
    added to a MARKETING one that names none."""
    category = str(definition.get("category", ""))
    if definition.get("message_send_ttl_seconds") is not None:
        checked_ttl(category, definition["message_send_ttl_seconds"])
    elif category.upper() == "MARKETING" and marketing_ttl is not None:
        return {**definition, "message_send_ttl_seconds": marketing_ttl}
    return definition


async def set_ttl(client: GraphClient, app: Connectzap, name: str, seconds: int) -> list[TemplateInfo]:
    """Set the time-to-live of every language of template ``name`` on this account (``POST
    /{template-id}``); the templates as cached. A :class:`PayloadError` when none is cached with an
    id (``connectzap templates sync`` first) or ``seconds`` is out of the category's bounds."""
    waba = _waba(client)
    with app.db.read() as conn:
        found = [t for t in cache.all_templates(conn) if t.name == name and t.waba_id == waba and t.id]
    if not found:
        raise PayloadError(f"no template {name!r} of account {waba} is known here; run connectzap templates sync",
                           field="name")
    for info in found:
        checked_ttl(info.category, seconds)
    for info in found:
        await client.request("POST", str(info.id), json_body={"message_send_ttl_seconds": seconds})
    return found


async def create(client: GraphClient, app: Connectzap, definition: dict[str, Any]) -> TemplateInfo:
    """Submit a template for review and cache it with the status Meta answered (usually PENDING).
    A MARKETING one gets ``marketing_ttl_seconds`` as its time-to-live unless it names one."""
    waba = _waba(client)
    definition = with_ttl(definition, client.settings.marketing_ttl_seconds)
    answer = await client.request("POST", f"{waba}/message_templates", json_body=definition)
    info = to_info({**definition, **answer}, waba)
    with app.db.begin() as conn:
        cache.put(app.db, conn, info)
    return info


async def delete(client: GraphClient, app: Connectzap, name: str) -> int:
    """Delete every language of template ``name`` remotely and from the cache."""
    waba = _waba(client)
    await client.request("DELETE", f"{waba}/message_templates", params={"name": name})
    with app.db.begin() as conn:
        return cache.delete(conn, name, account=waba) + cache.delete(conn, name, account=cache.ANY_ACCOUNT)
