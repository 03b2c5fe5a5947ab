"""The text of an SMS: a text message as written, a template rendered from the SMS text templates.

A WhatsApp template cannot go by SMS as it is (it lives at Meta), so a template send names an SMS
text template of the same ``name`` in ``[connectors.sms.templates]``, one text per language. The
template's parameters are its variables: named parameters by name, positional ones as ``p1``,
``p2``, ... (also the list ``params``), a text header parameter as ``header``. Rendering is
sandboxed Jinja2 without autoescaping (an SMS is plain text). The language is looked up as given
(``pt_BR``), then by its first part (``pt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from ...core.errors import FatalDeliveryError, SkippableDeliveryError
from ...core.messages import CurrencyParam, DateTimeParam, MessageContent, TemplateContent, TextContent, TextParam


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=False)


@lru_cache(maxsize=512)
def compile_text(text: str) -> Template:
    """The compiled template of ``text`` (raises :class:`jinja2.TemplateSyntaxError`)."""
    return _environment().from_string(text)


def _value(param: TextParam | CurrencyParam | DateTimeParam) -> str:
    return param.text if isinstance(param, TextParam) else param.fallback_value


def variables(content: TemplateContent) -> dict[str, Any]:
    """What a template's text may use, from the parameters of ``content``."""
    out: dict[str, Any] = {}
    if isinstance(content.body, dict):
        out.update({name: _value(p) for name, p in content.body.items()})
    else:
        values = [_value(p) for p in content.body]
        out["params"] = values
        out.update({f"p{i}": v for i, v in enumerate(values, start=1)})
    if content.header is not None and content.header.type == "text":
        out["header"] = content.header.text
    return out


def template_text(templates: Mapping[str, Mapping[str, str]], name: str, language: str) -> str:
    """The text of template ``name`` in ``language`` (or its first part), or a skippable error."""
    languages = templates.get(name)
    if not languages:
        raise SkippableDeliveryError(f"no SMS text template {name!r}: add [connectors.sms.templates.{name}]",
                                     code="no_sms_template")
    for candidate in (language, language.replace("-", "_").split("_")[0]):
        if candidate in languages:
            return languages[candidate]
    raise SkippableDeliveryError(f"SMS text template {name!r} has no text in {language!r} "
                                 f"(it has {', '.join(sorted(languages))})", code="no_sms_template")


def render(content: MessageContent, templates: Mapping[str, Mapping[str, str]]) -> str:
    """The body an SMS of ``content`` carries."""
    if isinstance(content, TextContent):
        return content.body
    if isinstance(content, TemplateContent):
        text = template_text(templates, content.name, content.language)
        try:
            return compile_text(text).render(variables(content)).strip()
        except UndefinedError as exc:
            raise SkippableDeliveryError(f"SMS text template {content.name!r} ({content.language}) needs a "
                                         f"parameter the message does not give: {exc.message}",
                                         code="template_parameters") from None
    raise FatalDeliveryError(f"an SMS carries text only; a {getattr(content, 'type', type(content).__name__)} "
                             "message cannot go by SMS", code="unsupported_type")
