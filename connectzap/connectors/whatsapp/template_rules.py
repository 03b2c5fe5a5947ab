"""Meta's rules for a new message template, checked before the sandbox accepts one.

What Meta refuses at creation is a :class:`~connectzap.core.errors.PayloadError` naming the
field; what it accepts but rejects at review (adjacent parameters) is a :class:`Review` with
Meta's reason. Sources: Meta's template components reference (header text max 60 characters
with one parameter, body max 1024, footer max 60, at most 10 buttons, quick-reply labels max 25,
copy-code examples max 20, examples required for every parameter) and the notes in
``shared/research/whatsapp.md`` section 4 (name syntax, categories, parameter formats, parameters
at the start or end of the body refused with error 2388299, adjacent parameters rejected as
INVALID_FORMAT). The ``REQUEST_CONTACT_INFO`` button (a customer known by BSUID only shares their
number with one tap) is taken from partners restating Meta (Gupshup's and Kapso's template guides,
read 2026-12-02; Meta's own page was not found): marketing and utility templates only, the one
button of its template, its label fixed by WhatsApp per language, no parameter when sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ...core.errors import PayloadError
from ...core.wording import counted

NAME = re.compile(r"[a-z0-9_]{1,512}")
LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")  # en, es, en_US, pt_BR, zh_CN ...
NAMED_PARAMETER = re.compile(r"[a-z][a-z0-9_]*")
PLACEHOLDER = re.compile(r"{{(.*?)}}")
CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
HEADER_FORMATS = ("TEXT", "IMAGE", "VIDEO", "GIF", "DOCUMENT", "LOCATION")
BUTTON_TYPES = ("QUICK_REPLY", "URL", "PHONE_NUMBER", "COPY_CODE", "OTP", "FLOW", "MPM", "CATALOG", "SPM",
                "VOICE_CALL", "REQUEST_CONTACT_INFO")
BUTTON_LIMITS = {"URL": 2, "PHONE_NUMBER": 1, "COPY_CODE": 1}
LABELLED = ("QUICK_REPLY", "URL", "PHONE_NUMBER", "FLOW", "VOICE_CALL")

ADJACENT_RECOMMENDATION = ("Separate parameters with descriptive text so that each one is clearly "
                           "contextualized.")


@dataclass(frozen=True)
class Review:
    """What review decides: APPROVED, or REJECTED with Meta's reason and explanation."""

    status: str = "APPROVED"
    reason: str = "NONE"
    explanation: str | None = None


def _fail(field: str, why: str) -> PayloadError:
    return PayloadError(f"{field}: {why}", field=field)


def _placeholders(text: str) -> list[str]:
    return [p.strip() for p in PLACEHOLDER.findall(text)]


def check(definition: dict[str, Any]) -> Review:
    """Raise :class:`PayloadError` for what Meta refuses outright; return the review's outcome."""
    name = definition.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise _fail("name", "use 1 to 512 lowercase letters, digits and underscores")
    language = definition.get("language")
    if not isinstance(language, str) or not LANGUAGE.fullmatch(language):
        raise _fail("language", "use a WhatsApp language code such as en, es, en_US or pt_BR")
    category = str(definition.get("category") or "").upper()
    if category not in CATEGORIES:
        raise _fail("category", f"must be one of {', '.join(CATEGORIES)}")
    fmt = str(definition.get("parameter_format") or "POSITIONAL").upper()
    if fmt not in ("POSITIONAL", "NAMED"):
        raise _fail("parameter_format", "must be POSITIONAL or NAMED")
    components = definition.get("components")
    if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
        raise _fail("components", "must be a list of objects")
    by_type: dict[str, dict[str, Any]] = {}
    for component in components:
        kind = str(component.get("type") or "").upper()
        if kind not in ("HEADER", "BODY", "FOOTER", "BUTTONS"):
            raise _fail("components", f"unknown component type {component.get('type')!r}")
        if kind in by_type:
            raise _fail("components", f"a template has at most one {kind}")
        by_type[kind] = component
    if "BODY" not in by_type:
        raise _fail("components", "a BODY component is required")
    review = _body(by_type["BODY"], fmt, category)
    if "HEADER" in by_type:
        _header(by_type["HEADER"], fmt)
    if "FOOTER" in by_type:
        _text(by_type["FOOTER"], "FOOTER", 60, allow_parameters=False)
    if "BUTTONS" in by_type:
        _buttons(by_type["BUTTONS"], category)
    return review


def _text(component: dict[str, Any], where: str, limit: int, *, allow_parameters: bool = True) -> str:
    text = component.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _fail(f"{where}.text", "is required")
    if len(text) > limit:
        raise _fail(f"{where}.text", f"is {len(text)} characters; the limit is {limit}")
    if not allow_parameters and _placeholders(text):
        raise _fail(f"{where}.text", "takes no parameters")
    return text


def _parameters(text: str, fmt: str, where: str) -> list[str]:
    """The parameters in ``text``, checked against the template's parameter format."""
    found = _placeholders(text)
    for name in found:
        if fmt == "POSITIONAL" and not name.isdigit():
            raise _fail(where, f"{{{{{name}}}}} is a named parameter; set parameter_format NAMED "
                               "or number the parameters {{1}}, {{2}}, ...")
        if fmt == "NAMED" and not NAMED_PARAMETER.fullmatch(name):
            raise _fail(where, f"{{{{{name}}}}}: named parameters use lowercase letters, digits and "
                               "underscores, starting with a letter")
    if fmt == "POSITIONAL":
        numbers = sorted({int(n) for n in found})
        if numbers != list(range(1, len(numbers) + 1)):
            raise _fail(where, "positional parameters must be numbered {{1}}, {{2}}, ... without gaps")
    return found


def _examples(component: dict[str, Any], names: list[str], fmt: str, positional_key: str, named_key: str,
              where: str, *, nested: bool) -> None:
    """Meta requires an example value for every parameter."""
    if not names:
        return
    example = component.get("example")
    example = example if isinstance(example, dict) else {}
    if fmt == "NAMED":
        given = example.get(named_key)
        listed = {e.get("param_name") for e in given if isinstance(e, dict) and e.get("example") not in (None, "")} \
            if isinstance(given, list) else set()
        missing = sorted(set(names) - listed)
        if missing:
            raise _fail(f"{where}.example.{named_key}", f"give an example for {', '.join(missing)}")
        return
    values = example.get(positional_key)
    if nested:
        values = values[0] if isinstance(values, list) and values and isinstance(values[0], list) else None
    count = len(set(names))
    if not isinstance(values, list) or len(values) != count or any(v in (None, "") for v in values):
        shape = "[[" + ", ".join(f'"value {n}"' for n in range(1, count + 1)) + "]]" if nested \
            else '["value"]'
        raise _fail(f"{where}.example.{positional_key}", f"give {counted(count, 'example value')}: {shape}")


def _body(component: dict[str, Any], fmt: str, category: str) -> Review:
    if category == "AUTHENTICATION" and not component.get("text"):
        return Review()  # Meta writes the body of authentication templates itself
    text = _text(component, "BODY", 1024)
    names = _parameters(text, fmt, "BODY.text")
    _examples(component, names, fmt, "body_text", "body_text_named_params", "BODY", nested=True)
    stripped = text.strip()
    if names and (PLACEHOLDER.match(stripped) or re.search(r"{{[^{}]*}}$", stripped)):
        raise _fail("BODY.text", "a parameter cannot start or end the body (Meta error 2388299): "
                                 "add text before and after it")
    if re.search(r"}}\s*{{", text):
        return Review("REJECTED", "INVALID_FORMAT",
                      "Your template has parameters placed next to each other without text or punctuation "
                      "between them.")
    return Review()


def _header(component: dict[str, Any], fmt: str) -> None:
    kind = str(component.get("format") or "").upper()
    if kind not in HEADER_FORMATS:
        raise _fail("HEADER.format", f"must be one of {', '.join(HEADER_FORMATS)}")
    if kind == "TEXT":
        text = _text(component, "HEADER", 60)
        names = _parameters(text, fmt, "HEADER.text")
        if len(set(names)) > 1:
            raise _fail("HEADER.text", "a text header takes at most one parameter")
        _examples(component, names, fmt, "header_text", "header_text_named_params", "HEADER", nested=False)
    elif kind != "LOCATION":
        example = component.get("example")
        handles = example.get("header_handle") if isinstance(example, dict) else None
        if not isinstance(handles, list) or not handles:
            raise _fail("HEADER.example.header_handle", f"a {kind} header needs an example media handle")


def _buttons(component: dict[str, Any], category: str) -> None:
    buttons = component.get("buttons")
    if not isinstance(buttons, list) or not buttons or not all(isinstance(b, dict) for b in buttons):
        raise _fail("BUTTONS.buttons", "must be a list of 1 to 10 buttons")
    if len(buttons) > 10:
        raise _fail("BUTTONS.buttons", f"{len(buttons)} buttons; a template has at most 10")
    kinds = [str(b.get("type") or "").upper() for b in buttons]
    for index, (button, kind) in enumerate(zip(buttons, kinds, strict=True)):
        where = f"BUTTONS.buttons.{index}"
        if kind not in BUTTON_TYPES:
            raise _fail(f"{where}.type", f"must be one of {', '.join(BUTTON_TYPES)}")
        if kind in LABELLED:
            _text(button, where, 25, allow_parameters=False)
        if kind == "URL":
            url = button.get("url")
            if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > 2000:
                raise _fail(f"{where}.url", "an http(s) URL of at most 2000 characters is required")
            names = _placeholders(url)
            if len(names) > 1 or (names and not url.endswith("}}")):
                raise _fail(f"{where}.url", "a URL takes one parameter at most, at its end ({{1}})")
            example = button.get("example")
            if names and not (isinstance(example, list) and example and example[0]):
                raise _fail(f"{where}.example", 'give an example of the full URL: ["https://..."]')
        elif kind == "PHONE_NUMBER":
            phone = button.get("phone_number")
            if not isinstance(phone, str) or not phone or len(phone) > 20:
                raise _fail(f"{where}.phone_number", "a phone number of at most 20 characters is required")
        elif kind == "COPY_CODE":
            example = button.get("example")
            if not isinstance(example, str) or not example or len(example) > 20:
                raise _fail(f"{where}.example", "an example code of at most 20 characters is required")
    for kind, limit in BUTTON_LIMITS.items():
        if kinds.count(kind) > limit:
            raise _fail("BUTTONS.buttons", f"at most {counted(limit, f'{kind} button')}")
    if "REQUEST_CONTACT_INFO" in kinds:
        _request_contact_info(buttons, kinds, category)
    if category == "AUTHENTICATION" and kinds != ["OTP"]:
        raise _fail("BUTTONS.buttons", "an AUTHENTICATION template has exactly one OTP button")
    quick = [n for n, kind in enumerate(kinds) if kind == "QUICK_REPLY"]
    if quick and quick != list(range(quick[0], quick[0] + len(quick))):
        raise _fail("BUTTONS.buttons", "quick-reply buttons must be grouped together, before or after the others")


def _request_contact_info(buttons: list[dict[str, Any]], kinds: list[str], category: str) -> None:
    """The share-contact button stands alone; WhatsApp writes its label in the customer's language."""
    if category not in ("MARKETING", "UTILITY"):
        raise _fail("BUTTONS.buttons", "a REQUEST_CONTACT_INFO button needs a MARKETING or UTILITY template")
    if kinds != ["REQUEST_CONTACT_INFO"]:
        raise _fail("BUTTONS.buttons", "a REQUEST_CONTACT_INFO button is the only button of its template")
    label = buttons[0].get("text")
    if label is not None and (not isinstance(label, str) or len(label) > 25 or _placeholders(label)):
        raise _fail("BUTTONS.buttons.0.text", "the label is WhatsApp's own (e.g. Share Contact Info): "
                                              "leave it out or give at most 25 characters without parameters")
