"""The template cache the send gate checks, and what each template expects as parameters."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from .messages import TemplateContent
from .models import TemplateInfo, TemplateUpdate
from .store.database import Database, now
from .store.schema import templates
from .wording import counted

PAUSED = "PAUSED"
"""WhatsApp's status for a template paused for low quality (3 h, then 6 h; a third pause disables
it). Sends of it wait in the queue; the pause ends with the status back to APPROVED."""

ANY_ACCOUNT = ""
"""The ``waba_id`` of a cached template of no particular business account (added by hand or by a
test): any number may send it. A synced template is kept under its account's WABA."""


@dataclass(frozen=True)
class BusinessAccounts:
    """Which business account (WABA) each number sends from, so a send is checked against the
    templates of its own account. Offered by the connector that serves several accounts
    (:meth:`~connectzap.core.connector.Connector.business_accounts`); without it every cached
    template counts for every number, as with one account."""

    numbers: Mapping[str, str]
    """phone number id -> the WABA it belongs to"""
    default: str | None
    """the WABA of the default number (a message that names no number leaves from it)"""

    def of(self, number: str | None) -> str | None:
        """The WABA ``number`` (None: the default number) sends from; None when not known."""
        return self.numbers.get(number) if number else self.default


_PLACEHOLDER = re.compile(r"{{\s*([A-Za-z0-9_]+)\s*}}")


def _placeholders(text: str | None) -> list[str]:
    seen: list[str] = []
    for name in _PLACEHOLDER.findall(text or ""):
        if name not in seen:
            seen.append(name)
    return seen


@dataclass
class Expectation:
    """What a send of this template must supply."""

    header: str | None = None  # None, "text", "image", "video", "document", "location"
    header_params: list[str] = field(default_factory=list)
    body_params: list[str] = field(default_factory=list)
    buttons: dict[int, str] = field(default_factory=dict)  # index -> sub_type that needs a parameter
    fixed_buttons: set[int] = field(default_factory=set)  # WhatsApp's own buttons: no parameter of any kind


def expectation(info: TemplateInfo) -> Expectation:
    exp = Expectation()
    for comp in info.components:
        ctype = str(comp.get("type", "")).upper()
        if ctype == "HEADER":
            fmt = str(comp.get("format", "TEXT")).upper()
            if fmt == "TEXT":
                exp.header_params = _placeholders(comp.get("text"))
                exp.header = "text" if exp.header_params else None
            elif fmt in ("IMAGE", "VIDEO", "DOCUMENT", "LOCATION"):
                exp.header = fmt.lower()
        elif ctype == "BODY":
            exp.body_params = _placeholders(comp.get("text"))
        elif ctype == "BUTTONS":
            for index, button in enumerate(comp.get("buttons", [])):
                btype = str(button.get("type", "")).upper()
                if btype == "URL" and _placeholders(button.get("url")):
                    exp.buttons[index] = "url"
                elif btype == "COPY_CODE":
                    exp.buttons[index] = "copy_code"
                elif btype == "FLOW":
                    exp.buttons[index] = "flow"
                elif btype == "REQUEST_CONTACT_INFO":
                    exp.fixed_buttons.add(index)
    return exp


def check_params(info: TemplateInfo, content: TemplateContent, exp: Expectation | None = None) -> str | None:
    """Why ``content`` does not fit ``info`` (whose :func:`expectation` ``exp`` is, when already
    worked out), or None when it fits exactly."""
    exp = exp or expectation(info)
    return check_body(info, content.body, exp) or check_rest(info, content, exp)


def check_body(info: TemplateInfo, body: list[Any] | dict[str, Any], exp: Expectation) -> str | None:
    """Why ``body`` (a send's body parameters) does not fit ``info``: the part of :func:`check_params`
    that differs between the recipients of one campaign."""
    named = info.parameter_format == "NAMED"
    if named and isinstance(body, list) and body:
        return "template uses named parameters: pass body as a mapping"
    if not named and isinstance(body, dict) and body:
        return "template uses positional parameters: pass body as a list"
    if named:
        given = set(body) if isinstance(body, dict) else set()
        if given != set(exp.body_params):
            missing = sorted(set(exp.body_params) - given)
            extra = sorted(given - set(exp.body_params))
            return f"body parameters differ: missing {missing}, unexpected {extra}"
    elif len(body) != len(exp.body_params):
        return f"body expects {counted(len(exp.body_params), 'parameter')}, got {len(body)}"
    return None


def check_rest(info: TemplateInfo, content: TemplateContent, exp: Expectation) -> str | None:
    """Why the header or buttons of ``content`` do not fit ``info`` (:func:`check_params` after the body)."""
    named = info.parameter_format == "NAMED"
    if exp.header is None and content.header is not None:
        return "template has no header parameter"
    if exp.header is not None and (content.header is None or content.header.type != exp.header):
        return f"template needs a {exp.header} header parameter"
    if exp.header == "text" and named and content.header is not None \
            and content.header.parameter_name not in exp.header_params:
        return f"header parameter must be named {exp.header_params[0]}"
    given_buttons = {b.index: b.sub_type for b in content.buttons if b.sub_type != "quick_reply"}
    for index, sub_type in exp.buttons.items():
        if given_buttons.get(index) != sub_type:
            return f"button {index} needs a {sub_type} parameter"
    for index in given_buttons:
        if index not in exp.buttons:
            return f"button {index} takes no parameter"
    fixed = sorted(exp.fixed_buttons & {b.index for b in content.buttons})
    if fixed:
        return f"button {fixed[0]} is WhatsApp's share-contact button and takes no parameter"
    return None


def get(conn: Connection, name: str, language: str, account: str | None = None) -> TemplateInfo | None:
    """The template ``account`` (a WABA) may send: its own, else one of no particular account;
    with ``account`` None, any account's (one of no particular account first)."""
    return pick(_to_info(r) for r in conn.execute(
        select(templates).where(templates.c.name == name, templates.c.language == language)))(account)


def pick(found: Iterable[TemplateInfo]) -> Callable[[str | None], TemplateInfo | None]:
    """From the accounts' versions of one template (name and language): the one a number of a
    given account sends."""
    by_account = {info.waba_id or ANY_ACCOUNT: info for info in found}

    def choose(account: str | None) -> TemplateInfo | None:
        if account is None:
            return by_account.get(ANY_ACCOUNT) or next(iter(by_account.values()), None)
        return by_account.get(account) or by_account.get(ANY_ACCOUNT)
    return choose


def named(conn: Connection, names: set[str]) -> list[TemplateInfo]:
    """Every language of each template in ``names``."""
    return [_to_info(r) for r in conn.execute(select(templates).where(templates.c.name.in_(names)))]


def languages(conn: Connection, name: str) -> list[str]:
    return [r[0] for r in conn.execute(select(templates.c.language).where(templates.c.name == name)).all()]


def all_templates(conn: Connection) -> list[TemplateInfo]:
    return [_to_info(r) for r in conn.execute(
        select(templates).order_by(templates.c.name, templates.c.language, templates.c.waba_id))]


def put(db: Database, conn: Connection, info: TemplateInfo) -> None:
    db.upsert(conn, templates, {
        "name": info.name, "language": info.language, "status": info.status, "category": info.category,
        "parameter_format": info.parameter_format, "components": json.dumps(info.components),
        "template_id": info.id, "waba_id": info.waba_id or ANY_ACCOUNT, "quality": info.quality,
        "updated_at": now()},
        ["waba_id", "name", "language"])


def apply_update(db: Database, conn: Connection, update: TemplateUpdate) -> bool:
    """Apply a status/category/quality change from a webhook; an announced category change is kept with
    its effective time (:meth:`TemplateInfo.category_at`). Unknown templates are skipped (sync fetches them).
    An update that names its business account (the webhook's ``entry.id``) changes only that account's
    template (or one of no particular account), never another account's of the same name."""
    stmt = templates.update().where(templates.c.name == update.name)
    if update.waba_id:
        stmt = stmt.where(templates.c.waba_id.in_((update.waba_id, ANY_ACCOUNT)))
    if update.language:
        stmt = stmt.where(templates.c.language == update.language)
    values: dict[str, Any] = {"updated_at": now()}
    if update.status:
        values["status"] = update.status.upper()
    if update.quality:
        values["quality"] = update.quality.upper()
    if update.category:  # a change done: it replaces any announced one
        values.update(category=update.category.upper(), pending_category=None, category_effective_at=None)
    elif update.correct_category and update.category_update_timestamp is not None:
        values.update(pending_category=update.correct_category.upper(),
                      category_effective_at=update.category_update_timestamp)
    if len(values) == 1:
        return False
    return bool(conn.execute(stmt.values(**values)).rowcount)


def announcement(update: TemplateUpdate) -> str | None:
    """What an announced re-categorisation means for sends, in one line for the operator; None for
    any other update."""
    if not update.correct_category or update.category_update_timestamp is None:
        return None
    when = datetime.fromtimestamp(update.category_update_timestamp, UTC)
    current = update.model_extra.get("current_category") if update.model_extra else None
    was = f" (now {current})" if current else ""
    new = update.correct_category.lower()
    return (f"template {update.name}" + (f" ({update.language})" if update.language else "")
            + f" becomes {update.correct_category.upper()}{was} on {when:%Y-%m-%d %H:%M} UTC: from then its "
            f"sends need {new} consent")


def delete(conn: Connection, name: str, language: str | None = None, account: str | None = None) -> int:
    """Delete ``name`` (one ``language``, else every one) from the cache: only ``account``'s when
    given (a WABA; :data:`ANY_ACCOUNT`: the one of no particular account), else every account's."""
    stmt = templates.delete().where(templates.c.name == name)
    if language:
        stmt = stmt.where(templates.c.language == language)
    if account is not None:
        stmt = stmt.where(templates.c.waba_id == account)
    return conn.execute(stmt).rowcount


def _to_info(row: Any) -> TemplateInfo:
    m = row._mapping
    return TemplateInfo(name=m["name"], language=m["language"], status=m["status"], category=m["category"],
                        parameter_format=m["parameter_format"], components=json.loads(m["components"]),
                        id=m["template_id"], waba_id=m["waba_id"] or None, pending_category=m["pending_category"],
                        category_effective_at=m["category_effective_at"], quality=m["quality"])
