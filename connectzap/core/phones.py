"""Phone numbers: E.164 via ``phonenumbers``, and the keyed hash that stands in for them at rest."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re

import phonenumbers

from .errors import InvalidPhoneError

_default_region: str | None = None


def set_default_region(region: str | None) -> None:
    """Set the region used for numbers written without a country code (from ``phones.default_region``)."""
    global _default_region
    _default_region = region.upper() if region else None


def default_region() -> str | None:
    return _default_region


def to_e164(raw: str | int, country: str | None = None) -> str:
    """Normalise ``raw`` to E.164 (``+4915112345678``) or raise :class:`InvalidPhoneError`.

    ``country`` (ISO 3166 alpha-2, e.g. the billing country of an order) is used for
    national numbers; without it the configured default region is used. WhatsApp ids
    (``wa_id``: digits with the country code, no ``+``) are accepted as international.
    """
    if isinstance(country, str) and not country.strip():
        country = None  # an empty billing country means "not given"
    if country is not None and not (isinstance(country, str) and len(country.strip()) == 2
                                    and country.strip().isalpha()):
        raise InvalidPhoneError("country must be a two-letter ISO 3166 code, e.g. DE", field="country")
    if not isinstance(raw, (str, int)) or isinstance(raw, bool):
        raise InvalidPhoneError("phone number must be a string", field="phone")
    text = str(raw).strip()
    if not text:
        raise InvalidPhoneError("phone number is empty", field="phone")
    if text.startswith("00"):
        text = "+" + text[2:]
    region = (country or _default_region or "").upper() or None
    return _parse_e164(text, region)


@functools.lru_cache(maxsize=16384)
def _parse_e164(text: str, region: str | None) -> str:
    # Parsing and validating is the costliest step of reading a webhook, and the same customers'
    # numbers come back again and again (replies, delivery statuses): remember recent answers.
    # Failures raise, and lru_cache does not keep those.
    candidates = [text]
    digits = "".join(ch for ch in text if ch.isdigit())
    if not text.startswith("+") and digits:
        if region is None:
            candidates = ["+" + digits]  # a wa_id or a number already carrying its country code
        else:
            candidates.append("+" + digits)  # national first, then "it was international after all"
            if _looks_international(digits, region):
                candidates.reverse()
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if region is None:
        raise InvalidPhoneError("not a valid phone number (without a country code it needs a country)",
                                field="phone")
    raise InvalidPhoneError(f"not a valid phone number for region {region}", field="phone")


def _looks_international(digits: str, region: str) -> bool:
    """A wa_id next to a country hint (``4915112345678`` with ``DE``): the digits start with the
    country code where a national number would start with the trunk prefix. Read nationally it
    would gain a second country code and become another contact."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    trunk = metadata.national_prefix if metadata is not None else None
    if not trunk:
        return False
    code = str(phonenumbers.country_code_for_region(region))
    return not digits.startswith(trunk) and digits.startswith(code)


def wa_digits(e164: str) -> str:
    """The Cloud API ``to`` form: E.164 without the plus."""
    return e164.lstrip("+")


def mask(e164: str | None) -> str:
    """A phone number safe for logs: country code and last two digits only."""
    if not e164:
        return "?"
    text = str(e164)
    return text[:3] + "*" * max(len(text) - 5, 0) + text[-2:]


def country_of(e164: str) -> str | None:
    """The ISO 3166 region of a number (``DE``), or None when its country code names none (``001``)."""
    try:
        return country_of_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return None


def country_of_number(number: phonenumbers.PhoneNumber) -> str | None:
    """:func:`country_of` a number already parsed."""
    region = phonenumbers.region_code_for_number(number)
    return region if region and region != "ZZ" and len(region) == 2 else None


def contact_key(e164: str, secret: bytes) -> str:
    """The keyed hash that identifies a contact at rest (HMAC-SHA256, hex, 32 chars)."""
    return hmac.new(secret, e164.encode(), hashlib.sha256).hexdigest()[:32]


_DIGIT_RUN = re.compile(r"\+?\d[\d \-().]{5,}\d")
_BARE_DIGITS = re.compile(r"(?<![\w+])\d{10,15}(?!\w)")


def scrub(text: str) -> str:
    """``text`` with every phone number in it masked (error texts and log lines may quote one).

    Numbers written with their country code (``+49 151 ...``), in the default region's national
    form, and bare WhatsApp ids (``4915112345678``) are found; other digits are left alone.
    """
    if not _DIGIT_RUN.search(text):
        return text
    spans = [(m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(text, _default_region or "ZZ",
                                                                       leniency=phonenumbers.Leniency.VALID)]
    for m in _BARE_DIGITS.finditer(text):
        try:
            valid = phonenumbers.is_valid_number(phonenumbers.parse("+" + m.group()))
        except phonenumbers.NumberParseException:
            valid = False
        if valid and not any(start <= m.start() < end for start, end in spans):
            spans.append((m.start(), m.end()))
    for start, end in sorted(spans, reverse=True):
        digits = "".join(ch for ch in text[start:end] if ch.isdigit() or ch == "+")
        text = text[:start] + mask(digits if digits.startswith(("+", "0")) else "+" + digits) + text[end:]
    return text
