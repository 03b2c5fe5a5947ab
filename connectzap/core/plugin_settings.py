"""Typed ``[plugins.NAME]`` sections, validated when the engine starts.

A plugin declares its settings model through the ``register_plugin_settings`` hook::

    class Settings(PluginSettings):
        template: str
        params: list[JinjaText] = []

    @hookimpl
    def register_plugin_settings(register):
        register("my_plugin", Settings)

:meth:`Connectzap.start` then validates the section (a typo'd key, a wrong type, Jinja that does
not parse) and refuses to start with one line naming the file, the key and the reason; hooks read
the result as ``ctx.plugin_settings``. A ``[plugins.NAME]`` section that no plugin owns is refused
too, with the closest real name. What only the database can tell -- whether the templates a
section names are in the template cache -- is checked by :func:`template_problems` (``doctor``,
``serve`` and ``worker`` run it) through :meth:`PluginSettings.templates_used`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from .errors import ConfigurationError
from .settings import Settings, describe_validation_error
from .models import Category
from .templates import ANY_ACCOUNT, BusinessAccounts

if TYPE_CHECKING:
    from .messages import Outgoing
    from .app import Connectzap


@dataclass(frozen=True)
class TemplateUse:
    """A WhatsApp template a section sends: where it is named, its name, and each language it may
    be sent in."""

    key: str
    name: str
    languages: tuple[str, ...]
    replies: bool = False
    """Sent in answer to a customer's message, from the number they wrote to (so, with several
    business accounts, every account must have it); False: from the default sending number."""


@dataclass(frozen=True)
class ConsentLink:
    """A link a customer follows to give consent (a ``wa.me`` address whose prefilled message records
    it), and its QR code as SVG."""

    url: str
    qr_svg: bytes


class PluginSettings(BaseModel):
    """Base for a plugin's ``[plugins.NAME]`` section. Unknown keys are refused (a typo must not
    silently mean "use the default"); declare secrets as ``SecretStr``."""

    model_config = ConfigDict(extra="forbid")

    def wants(self, kind: str) -> bool:
        """Whether this configuration gives the plugin's hook for events of ``kind`` (``inbound_message``...)
        anything to do. False (an optional feature left unconfigured) and the dispatcher does not call
        that hook at all: no delivery, no call. Default: True. Read once per process, at start."""
        return True

    def templates_used(self) -> Iterable[TemplateUse]:
        """The templates this section sends, so a start-up check can find each in the template
        cache. ``key`` is relative to the section, e.g. ``rules[0].template``. Default: none."""
        return ()

    def problem_with(self, settings: Settings) -> str | None:
        """What is wrong with this section given the rest of the configuration (e.g. it needs
        ``[business_hours]``), in one line, or None. Checked when the engine starts. Default: nothing."""
        return None

    def fallback_media(self, outgoing: Outgoing) -> list[str] | None:
        """The media ``outgoing`` -- a WhatsApp message this plugin proposed that names none itself
        -- falls back on, in order, when WhatsApp cannot deliver it (docs/channels.md, "Fallback"),
        e.g. the ``fallback`` of the order notification rule that made it; ``[]`` for none. Asked
        as the message is admitted. Default: None (no rule here: the connector the message's
        ``origin`` names decides, else ``[fallback] media``)."""
        return None

    def doctor_notes(self) -> list[str]:
        """What ``connectzap doctor`` should show about this section (one line each, never a secret),
        e.g. that it leaves the plugin nothing to do. Default: nothing."""
        return []

    def console_summary(self) -> list[tuple[str, str]]:
        """What the console's automation page shows about this section, as ``(label, value)`` pairs:
        whether it is on, what it matches, what it answers. Never a secret (say whether one is set)
        nor a customer's number; the page shortens long values. Default: nothing (not shown)."""
        return []

    def makes_consent_links(self) -> bool:
        """Whether :meth:`consent_link` makes links (the console's Automation page then offers its
        form). Default: False."""
        return False

    async def consent_link(self, app: Connectzap, *, keyword: str, category: Category) -> ConsentLink:
        """Make (or find again) the link whose message, sent by a customer, records consent for
        ``category``; called on the server's event loop by the console. Raise a
        :class:`~connectzap.ConnectzapError` saying why not. Default: no links (ConfigurationError)."""
        raise ConfigurationError("this plugin makes no consent links")


@lru_cache(maxsize=1)
def _jinja() -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=False)


@lru_cache(maxsize=512)
def _strict(source: str) -> Any:
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False).from_string(source)


def render_strict(source: str, values: Mapping[str, Any], *, section: str) -> str:
    """``source`` rendered in the sandbox over ``values``; a name it reads that ``values`` lacks
    (or any other rendering error) is a :class:`ConfigurationError` naming ``section`` and the text."""
    try:
        return str(_strict(source).render(values))
    except TemplateError as exc:
        raise ConfigurationError(f"{section}: cannot render {source!r}: {exc}") from None


def jinja_variables(source: str) -> set[str]:
    """The names ``source`` reads (``{{ first_name }}`` -> ``first_name``); raises ``ValueError``
    when it is not valid Jinja."""
    try:
        return set(meta.find_undeclared_variables(_jinja().parse(source)))
    except TemplateSyntaxError as exc:
        raise ValueError(f"not valid Jinja: {exc.message} (line {exc.lineno})") from None


def _parses(source: str) -> str:
    jinja_variables(source)
    return source


JinjaText = Annotated[str, AfterValidator(_parses)]
"""A string field that must be valid Jinja: a template that does not parse is refused at start."""


def jinja_names_known(source: str, known: Iterable[str]) -> str:
    """``source`` if every name it reads is in ``known``, else a ``ValueError`` naming the first
    unknown one and the closest known name. For models whose render values are fixed."""
    known = set(known)
    unknown = sorted(jinja_variables(source) - known)
    if unknown:
        raise ValueError(f"unknown variable {unknown[0]!r}{did_you_mean(unknown[0], known)}")
    return source


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def where(config_path: Path | None) -> str:
    """How a one-line configuration error names its source."""
    return str(config_path) if config_path is not None else "configuration (environment or defaults)"


def validate_sections(sections: Mapping[str, Mapping[str, Any]], models: Mapping[str, type[PluginSettings]],
                      *, owners: Iterable[str], config_path: Path | None) -> dict[str, PluginSettings]:
    """Each declared section validated; an undeclared section that no loaded plugin owns refused.

    ``owners`` are the names a section may carry without a model (plugins that read ``ctx.config``
    as a plain dict, or failed to load and are reported elsewhere).
    """
    source = where(config_path)
    names = set(models) | set(owners)
    for name in sections:
        if name not in names:
            raise ConfigurationError(f"{source}: [plugins.{name}]: no plugin has this name"
                                     f"{did_you_mean(name, models or names)}")
    validated: dict[str, PluginSettings] = {}
    for name, model in sorted(models.items()):
        section = sections.get(name, {})
        if not isinstance(section, Mapping):
            raise ConfigurationError(f"{source}: plugins.{name}: must be a table")
        try:
            validated[name] = model.model_validate(dict(section))
        except ValidationError as exc:
            raise ConfigurationError(f"{source}: {describe_validation_error(exc, f'plugins.{name}', model)}") from None
    return validated


def check_together(validated: Mapping[str, PluginSettings], settings: Settings) -> None:
    """Refuse to start, with one line, when a section does not fit the rest of the configuration."""
    for name, section in sorted(validated.items()):
        problem = section.problem_with(settings)
        if problem:
            raise ConfigurationError(f"{where(settings.config_path)}: plugins.{name}: {problem}")


def template_problems(uses: Iterable[tuple[str, TemplateUse]], cached: Iterable[tuple[str, str, str | None]],
                      *, config_path: Path | None, accounts: BusinessAccounts | None = None) -> list[str]:
    """One line per template a section names that the template cache lacks.

    ``uses`` pairs each :class:`TemplateUse` with its section (``plugins.NAME``, ``connectors.NAME``);
    ``cached`` holds each cached template's name, language and business account (WABA; empty or
    None: of no particular account). A use without languages (chosen per payload) needs the name in
    any language. With several ``accounts``, the account of the number that sends the template must
    have it (or a version of no particular account): the default number's, or every account's for
    a use that :attr:`~TemplateUse.replies`.
    """
    held: dict[tuple[str, str], set[str]] = {}
    for name, language, waba_id in cached:
        held.setdefault((name, language), set()).add(waba_id or ANY_ACCOUNT)
    names = {name for name, _ in held}
    source = where(config_path)
    problems = []
    for section, use in uses:
        what = _missing(use, held, names) or _missing_in_account(use, held, accounts)
        if what:
            problems.append(f"{source}: {section}.{use.key}: {what} "
                            "(create or approve it, then run: connectzap templates sync)")
    return problems


def _missing(use: TemplateUse, held: Mapping[tuple[str, str], set[str]], names: set[str]) -> str | None:
    """What the cache lacks of ``use`` whatever the account."""
    missing = [lang for lang in use.languages if (use.name, lang) not in held]
    if use.name not in names:
        return f"template {use.name!r} is not in the template cache{did_you_mean(use.name, names)}"
    if missing:
        return f"template {use.name!r} has no {', '.join(missing)} translation in the template cache"
    return None


def _missing_in_account(use: TemplateUse, held: Mapping[tuple[str, str], set[str]],
                        accounts: BusinessAccounts | None) -> str | None:
    """What the account of a number sending ``use`` lacks of it (the first such account)."""
    if accounts is None:
        return None
    senders: list[str | None] = [*sorted(set(accounts.numbers.values()))] if use.replies else [accounts.default]
    languages = use.languages or tuple(sorted({lang for name, lang in held if name == use.name}))
    for account in senders:
        if account is None:
            continue
        has = [lang for lang in languages if held[(use.name, lang)] & {account, ANY_ACCOUNT}]
        whose = ("it answers from the number the customer wrote to, which may be one of this account's"
                 if use.replies else "the account of the default number, which sends it")
        if not has or (use.languages and len(has) < len(languages)):
            lacking = [lang for lang in languages if lang not in has]
            detail = (f"is not in the templates of business account {account}" if not has else
                      f"has no {', '.join(lacking)} translation in the templates of business account {account}")
            return f"template {use.name!r} {detail} ({whose})"
    return None
