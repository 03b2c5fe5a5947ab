"""Email bodies from named templates, rendered in Jinja2's sandbox.

Layout: ``<templates_dir>/<name>/<language>/`` holds ``subject.txt`` and ``body.txt`` (both
required) and ``body.html`` (optional: without it the email is plain text). A language is looked up
as asked (``pt_BR``), then as its base language (``pt``), then as ``default_language``.

The HTML body is autoescaped, so a parameter such as ``<b>`` arrives as text, never as markup; the
text body and the subject are not (they are no HTML). A template that reads a parameter the send
did not give fails the send (StrictUndefined) instead of mailing a hole. Every failure is a
:class:`~connectzap.core.errors.SkippableDeliveryError`: this one message cannot go, the rest can.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from ...core.errors import SkippableDeliveryError
from ...core.messages import CurrencyParam, DateTimeParam, TemplateContent, TextParam

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None = None


def param_text(param: TextParam | CurrencyParam | DateTimeParam) -> str:
    return param.text if isinstance(param, TextParam) else param.fallback_value


def template_context(content: TemplateContent, extra: Mapping[str, Any]) -> dict[str, Any]:
    """What a template sees: ``params`` (a list for positional parameters, a mapping for named
    ones), each named parameter also by its own name, and ``extra`` (``unsubscribe_url``, ...)."""
    context: dict[str, Any] = dict(extra)
    if isinstance(content.body, dict):
        named = {key: param_text(value) for key, value in content.body.items()}
        context.update(named)
        context["params"] = named
    else:
        context["params"] = [param_text(value) for value in content.body]
    return context


def languages(asked: str, default: str) -> list[str]:
    """The folders tried for ``asked``, in order: ``pt_BR`` -> ``pt_BR``, ``pt``, then ``default``."""
    out = [asked]
    base = re.split(r"[_-]", asked, maxsplit=1)[0]
    for candidate in (base, default):
        if candidate and candidate not in out:
            out.append(candidate)
    return out


class TemplateRenderer:
    """Renders :class:`TemplateContent` from ``templates_dir``; ``None`` means no templates configured."""

    def __init__(self, templates_dir: Path | None, default_language: str) -> None:
        self.templates_dir = templates_dir
        self.default_language = default_language
        loader = FileSystemLoader(str(templates_dir)) if templates_dir is not None else None
        self._html = SandboxedEnvironment(loader=loader, autoescape=True, undefined=StrictUndefined)
        self._text = SandboxedEnvironment(loader=loader, autoescape=False, undefined=StrictUndefined,
                                          keep_trailing_newline=True)

    def render(self, content: TemplateContent, extra: Mapping[str, Any]) -> Rendered:
        if self.templates_dir is None:
            raise SkippableDeliveryError(f"email template {content.name!r}: no templates_dir is configured",
                                         code="template_missing")
        for segment in (content.name, content.language):
            if not _SEGMENT.match(segment):  # a name is one folder, never a path
                raise SkippableDeliveryError(f"email template {content.name!r} ({content.language}): "
                                             "names and languages are letters, digits, '_', '-' and '.'",
                                             code="template_missing")
        folder = self._folder(content)
        context = template_context(content, extra)
        try:
            subject = " ".join(self._text.get_template(f"{folder}/subject.txt").render(context).split())
            text = self._text.get_template(f"{folder}/body.txt").render(context)
            html = (self._html.get_template(f"{folder}/body.html").render(context)
                    if (self.templates_dir / folder / "body.html").is_file() else None)
        except TemplateNotFound as exc:
            raise SkippableDeliveryError(f"email template {folder}: {exc.name} is missing",
                                         code="template_missing") from None
        except TemplateError as exc:  # a syntax error, an unknown parameter, a sandbox refusal
            raise SkippableDeliveryError(f"email template {folder} cannot be rendered: {exc.message}",
                                         code="template_error") from None
        if not subject:
            raise SkippableDeliveryError(f"email template {folder}: the subject is empty", code="template_error")
        return Rendered(subject=subject, text=text, html=html)

    def _folder(self, content: TemplateContent) -> str:
        assert self.templates_dir is not None
        tried = languages(content.language, self.default_language)
        for language in tried:
            if (self.templates_dir / content.name / language).is_dir():
                return f"{content.name}/{language}"
        raise SkippableDeliveryError(f"email template {content.name!r} has none of the languages "
                                     f"{', '.join(tried)} in {self.templates_dir}", code="template_missing")
