"""Which language to answer a customer in, for every bundled plugin that writes to customers
(opt-out confirmations, handoff confirmations, FAQ answers): the language of the words they wrote
when only one language uses them, else the language of their number's country, else a default.

WhatsApp tells us no customer language; the number's country (a BSUID starts with it too) and the
words themselves are what there is.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import phonenumbers

from connectzap import is_bsuid

# The language a country's customers read, for the countries whose language has built-in texts.
COUNTRY_LANGUAGES: dict[str, str] = {
    **dict.fromkeys(("ES", "MX", "AR", "CO", "CL", "PE", "VE", "EC", "GT", "CU", "BO", "DO", "HN", "PY", "SV",
                     "NI", "CR", "PA", "UY", "PR", "GQ"), "es"),
    **dict.fromkeys(("BR", "PT", "AO", "MZ", "CV", "GW", "ST"), "pt"),
    **dict.fromkeys(("US", "GB", "IE", "CA", "AU", "NZ", "ZA", "IN", "NG", "KE", "GH", "SG", "PH", "JM"), "en"),
    **dict.fromkeys(("DE", "AT"), "de"),
    **dict.fromkeys(("FR",), "fr"),
}


def language_of(tag: str) -> str:
    """``pt_BR``, ``pt-br`` and ``PT`` are all ``pt``: texts are chosen by language, not region."""
    return tag.strip().replace("-", "_").split("_", 1)[0].lower()


def checked_countries(countries: Mapping[str, str]) -> dict[str, str]:
    """A ``countries`` setting (country code -> language), checked and normalised."""
    for country in countries:
        if not (len(country) == 2 and country.isalpha()):
            raise ValueError(f"{country!r} is not a two-letter country code (ISO 3166, e.g. CH)")
    return {country.upper(): language_of(tag) for country, tag in countries.items()}


def country_language(who: str, overrides: Mapping[str, str]) -> str | None:
    """The language of the country of ``who`` (a phone number or a BSUID), if known."""
    if is_bsuid(who):  # a business-scoped user id starts with the customer's country (``US.1349…``)
        region: str | None = who[:2]
    else:
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(who))
        except phonenumbers.NumberParseException:
            return None
    if region is None:
        return None
    return overrides.get(region) or COUNTRY_LANGUAGES.get(region)


def choose_language(word_languages: Sequence[str], who: str | None, available: Collection[str], default: str,
                    countries: Mapping[str, str]) -> str:
    """The answer's language among ``available``: the words' own when one language alone uses
    them (``word_languages``), else the country's of ``who`` (when it is one of the words'
    languages, or the words have none), else ``default`` (English if even that has no text)."""
    of_word = [lang for lang in word_languages if lang in available]
    if len(of_word) == 1:
        return of_word[0]
    country = country_language(who, countries) if who else None
    if country in available and (not of_word or country in of_word):
        assert country is not None
        return country
    if of_word and default not in of_word:
        return of_word[0]
    return default if default in available else "en"
