"""Lead welcome: a new lead who opted in gets one WhatsApp template, once per contact.

Config (``[plugins.lead_welcome]``)::

    template = "welcome_lead"          # an approved template in the cache
    language = "en"
    params = ["{{ firstname | default('there') }}", "{{ company }}"]   # or a table for named params
    sources = ["hubspot"]              # optional: only leads from these connectors

Parameters are rendered from the lead's CRM properties (plus ``lead`` and ``contact``) in
jinja2's sandbox. Once per contact: the idempotency key is stable per source, portal and
contact id, so repeated webhooks, a second trigger (creation, then lifecycle stage) or a worker
restart never send it twice. A lead without consent for the template's category is skipped
with a visible reason and no send is recorded, so a later trigger (after the contact opted
in) can still welcome it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field

from connectzap import (BodyParam, ConfigurationError, EventContext, JinjaText, Lead, PluginSettings, SkippableError,
                        TemplateContent, TemplateUse, TextParam, hookimpl)
from connectzap.core import templates
from connectzap.core.media import FallbackMedia
from connectzap.core.messages import Outgoing


class WelcomeSettings(PluginSettings):
    """``[plugins.lead_welcome]``, validated when the engine starts. Without ``template`` the
    plugin does nothing."""

    template: str | None = None
    language: str = "en"
    params: list[JinjaText] | dict[str, JinjaText] = Field(default_factory=list)
    """Rendered from the lead's CRM properties, which vary by CRM: only the syntax is checked at start."""
    sources: list[str] = Field(default_factory=list)
    fallback: FallbackMedia | None = None
    """The media the welcome falls back on, in order, when WhatsApp cannot deliver it (e.g.
    ``["email"]``: the CRM contact's address); ``[]``: none. Default: ``[fallback] media``."""

    def templates_used(self) -> Iterator[TemplateUse]:
        if self.template:
            yield TemplateUse("template", self.template, (self.language,))

    def fallback_media(self, outgoing: Outgoing) -> list[str] | None:
        return self.fallback


@hookimpl
def register_plugin_settings(register: Callable[[str, type[PluginSettings]], None]) -> None:
    register("lead_welcome", WelcomeSettings)


def settings_of(ctx: EventContext) -> WelcomeSettings:
    return ctx.settings_as(WelcomeSettings)

_ENV = SandboxedEnvironment(autoescape=False)


@lru_cache(maxsize=64)
def _compiled(text: str) -> Any:
    return _ENV.from_string(text)


def render(text: str, values: dict[str, Any]) -> str:
    """One parameter: a jinja2 template rendered in the sandbox, whitespace trimmed."""
    try:
        return str(_compiled(text).render(**values)).strip()
    except TemplateError as exc:
        raise ConfigurationError(f"lead_welcome: parameter {text!r} cannot be rendered: {exc}") from None


def welcome_key(lead: Lead, source: str) -> str:
    portal = (lead.model_extra or {}).get("portal_id") or ""
    return f"welcome:{source}:{portal}:{lead.id}"


@hookimpl
def on_lead(lead: Lead, ctx: EventContext) -> None:
    config = settings_of(ctx)
    name, language = config.template, config.language
    if not name:
        return  # not configured: nothing to send
    if config.sources and ctx.source not in config.sources:
        return
    phone = lead.contact.phone
    if phone is None:
        raise SkippableError(f"lead {lead.id} has no WhatsApp number", code="no_phone")
    accounts = ctx.app.business_accounts  # the welcome leaves from the default number: its account's template
    with ctx.app.db.read() as conn:
        info = templates.get(conn, name, language, accounts.of(None) if accounts else None)
    if info is None:
        raise SkippableError(f"template {name} ({language}) is not in the template cache", code="template_unknown")
    category = info.category.lower()
    if not ctx.has_consent(phone, category):
        raise SkippableError(f"no {category} opt-in on record for lead {lead.id}; not welcomed (yet)",
                             code="no_consent")
    values = {**lead.properties, "lead": lead, "contact": lead.contact}
    params = config.params
    body: list[BodyParam] | dict[str, BodyParam]
    if isinstance(params, dict):
        body = {key: TextParam(text=render(str(text), values)) for key, text in params.items()}
    else:
        body = [TextParam(text=render(str(text), values)) for text in params]
    ctx.send(lead.contact, TemplateContent(name=name, language=language, body=body), key=welcome_key(lead, ctx.source))
