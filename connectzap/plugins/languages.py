"""Which language to answer a customer in, for every bundled plugin that writes to customers
(opt-out and handoff confirmations, FAQ answers, welcome and away messages): the language of the
words they wrote when only one language uses them, else the language of their number's country,
else a default.

WhatsApp tells us no customer language; the number's country (a BSUID starts with it too) and the
words themselves are what there is.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, ClassVar, Self

import phonenumbers
from pydantic import Field, field_validator, model_validator

from connectzap import PluginSettings, is_bsuid


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


class LanguageChoice(PluginSettings):
    """The keys of a plugin that answers in the customer's language: ``default_language`` and
    ``countries`` overrides (which language a country's customers read, e.g. ``CH = "de"``)."""

    default_language: str = "en"
    """The answer's language when neither the words nor the number's country choose one it has."""
    countries: dict[str, str] = Field(default_factory=dict)
    """Country code -> the language its customers read, where the built-in table is not right."""

    @field_validator("default_language")
    @classmethod
    def _default_language(cls, tag: str) -> str:
        return language_of(tag)

    @field_validator("countries")
    @classmethod
    def _countries(cls, countries: dict[str, str]) -> dict[str, str]:
        return checked_countries(countries)


class TextsByLanguage(LanguageChoice):
    """Settings of a plugin that answers with one text per language: ``texts`` (language -> text;
    one given replaces the built-in :attr:`BUILT_IN` one) and the :class:`LanguageChoice` keys.
    Subclasses set :attr:`BUILT_IN` and :attr:`SECTION` and add their own keys."""

    BUILT_IN: ClassVar[dict[str, str]] = {}
    SECTION: ClassVar[str] = ""

    texts: dict[str, Annotated[str, Field(min_length=1, max_length=4096)]] = Field(default_factory=dict)

    def texts_summary(self) -> list[tuple[str, str]]:
        """Each answer text by language (the configured ones, else the built-in), for the console."""
        return [(f"text ({language})", text) for language, text in sorted((self.texts or self.BUILT_IN).items())]

    @field_validator("texts")
    @classmethod
    def _text_languages(cls, texts: dict[str, str]) -> dict[str, str]:
        return {language_of(tag): text for tag, text in texts.items()}

    @model_validator(mode="after")
    def _default_has_text(self) -> Self:
        if self.default_language not in self.languages():
            raise ValueError(f"default_language {self.default_language!r} has no text: add it to "
                             f"[{self.SECTION}.texts] (built in: {', '.join(sorted(self.BUILT_IN))})")
        return self

    def languages(self) -> set[str]:
        """Languages a text exists in: the built-in ones and those configured."""
        return set(self.BUILT_IN) | set(self.texts)

    def text_for(self, who: str) -> tuple[str, str]:
        """(language, text) to answer ``who`` with: their country's language when it has a text,
        else ``default_language``."""
        language = choose_language((), who, self.languages(), self.default_language, self.countries)
        return language, self.texts.get(language) or self.BUILT_IN[language]
