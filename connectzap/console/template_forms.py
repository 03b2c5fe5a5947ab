"""The console's new-template form: its fields as the definition ``connectzap templates create``
reads from a file (name, language, category, parameter_format, components), and the message
that definition shows a customer with its example values in place (the preview).

Only the form's shape lives here; whether a definition is acceptable is the connector's
:meth:`~connectzap.core.connector.TemplateManagement.check`, the CLI's rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

FIELDS = ("account", "name", "language", "category", "parameter_format", "header", "header_example", "body",
          "body_examples", "footer", "quick_replies", "url_label", "url", "url_example", "phone_label", "phone")
PLACEHOLDER = re.compile(r"{{\s*([A-Za-z0-9_]+)\s*}}")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _examples(text: str, named: bool) -> Any:
    """One example a line: plain values in order, or ``name=value`` for named parameters."""
    values = _lines(text)
    if not named:
        return values
    return [{"param_name": name.strip(), "example": value.strip()}
            for name, _, value in (line.partition("=") for line in values)]


def definition(form: dict[str, str]) -> dict[str, Any]:
    """The template the form describes, as the CLI's definition file would hold it."""
    named = form.get("parameter_format") == "NAMED"
    components: list[dict[str, Any]] = []
    header = form.get("header", "").strip()
    if header:
        component: dict[str, Any] = {"type": "HEADER", "format": "TEXT", "text": header}
        if PLACEHOLDER.search(header):
            example = form.get("header_example", "").strip()
            component["example"] = ({"header_text_named_params": _examples(example, True)} if named
                                    else {"header_text": [example] if example else []})
        components.append(component)
    body: dict[str, Any] = {"type": "BODY", "text": form.get("body", "").strip()}
    if PLACEHOLDER.search(body["text"]):
        examples = _examples(form.get("body_examples", ""), named)
        body["example"] = {"body_text_named_params": examples} if named else {"body_text": [examples]}
    components.append(body)
    if form.get("footer", "").strip():
        components.append({"type": "FOOTER", "text": form["footer"].strip()})
    buttons: list[dict[str, Any]] = [{"type": "QUICK_REPLY", "text": label}
                                     for label in _lines(form.get("quick_replies", ""))]
    if form.get("url_label", "").strip() or form.get("url", "").strip():
        button: dict[str, Any] = {"type": "URL", "text": form.get("url_label", "").strip(),
                                  "url": form.get("url", "").strip()}
        if PLACEHOLDER.search(button["url"]):
            button["example"] = [form.get("url_example", "").strip()]
        buttons.append(button)
    if form.get("phone_label", "").strip() or form.get("phone", "").strip():
        buttons.append({"type": "PHONE_NUMBER", "text": form.get("phone_label", "").strip(),
                        "phone_number": form.get("phone", "").strip()})
    if buttons:
        components.append({"type": "BUTTONS", "buttons": buttons})
    return {"name": form.get("name", "").strip(), "language": form.get("language", "").strip(),
            "category": form.get("category", ""), "parameter_format": "NAMED" if named else "POSITIONAL",
            "components": components}


def field_of(problem: str | None) -> str:
    """The form field a refusal's ``field`` (``BODY.example.body_text``, ``BUTTONS.buttons.1.url``...) is about."""
    where = problem or ""
    head = where.split(".")[0]
    if head in ("name", "language", "category", "parameter_format", "account"):
        return head
    if head == "HEADER":
        return "header_example" if ".example" in where else "header"
    if head == "BODY" or head == "components":
        return "body_examples" if ".example" in where else "body"
    if head == "FOOTER":
        return "footer"
    if head == "BUTTONS":
        return "buttons"
    return "body"


@dataclass
class Preview:
    """The message as a customer sees it, with each parameter replaced by its example."""

    header: str | None
    body: str
    footer: str | None
    buttons: list[str] = field(default_factory=list)


def _filled(text: str, positional: list[str], named: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key.isdigit() and 0 < int(key) <= len(positional):
            return positional[int(key) - 1]
        return named.get(key, match.group(0))
    return PLACEHOLDER.sub(value, text)


def preview(form: dict[str, str]) -> Preview:
    """The form's message with its examples in place (a parameter without one stays ``{{n}}``)."""
    named = form.get("parameter_format") == "NAMED"
    body_values = _lines(form.get("body_examples", ""))
    by_name = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in body_values)} if named else {}
    header_example = form.get("header_example", "").strip()
    header = form.get("header", "").strip() or None
    if header:
        header_named = ({k.strip(): v.strip() for k, _, v in [header_example.partition("=")]} if named else {})
        header = _filled(header, [header_example] if header_example else [], header_named)
    buttons = _lines(form.get("quick_replies", ""))
    if form.get("url_label", "").strip():
        buttons.append(form["url_label"].strip())
    if form.get("phone_label", "").strip():
        buttons.append(form["phone_label"].strip())
    return Preview(header=header, body=_filled(form.get("body", "").strip(), [] if named else body_values, by_name),
                   footer=form.get("footer", "").strip() or None, buttons=buttons)
