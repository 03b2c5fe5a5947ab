"""Phone numbers: E.164 from every form a connector meets, and the keyed hash stored instead."""

from __future__ import annotations

from collections.abc import Iterator

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectzap.core.errors import InvalidPhoneError
from connectzap.core.phones import contact_key, default_region, mask, set_default_region, to_e164, wa_digits


@pytest.fixture
def region() -> Iterator[None]:
    before = default_region()
    yield
    set_default_region(before)


@pytest.mark.parametrize(("raw", "country", "expected"), [
    ("+49 151 12345678", None, "+4915112345678"),
    ("+4915112345678", "US", "+4915112345678"),     # an explicit country code wins over the hint
    ("0151 12345678", "DE", "+4915112345678"),
    ("0151-1234-5678", "de", "+4915112345678"),
    ("(202) 555-0123", "US", "+12025550123"),
    ("0049 151 12345678", None, "+4915112345678"),  # international prefix 00
    ("4915112345678", None, "+4915112345678"),      # a wa_id: digits with the country code
    ("4915112345678", "DE", "+4915112345678"),      # a wa_id even when a country is known
    (4915112345678, None, "+4915112345678"),
])
def test_to_e164(raw: str, country: str | None, expected: str) -> None:
    assert to_e164(raw, country) == expected


def test_default_region_reads_national_numbers(region: None) -> None:
    with pytest.raises(InvalidPhoneError):
        to_e164("0151 12345678")
    set_default_region("de")
    assert to_e164("0151 12345678") == "+4915112345678"
    assert to_e164("(202) 555-0123", "US") == "+12025550123"  # the caller's country beats the default


@pytest.mark.parametrize("raw", ["", "   ", "abc", "12", "+999 1234", "0151 12345678", "+49 151"])
def test_invalid_numbers_raise_with_the_field(raw: str) -> None:
    with pytest.raises(InvalidPhoneError) as caught:
        to_e164(raw)
    assert caught.value.field == "phone" and caught.value.code == "invalid_phone"


REGIONS = sorted(r for r in phonenumbers.SUPPORTED_REGIONS
                 if phonenumbers.example_number_for_type(r, phonenumbers.PhoneNumberType.MOBILE))


def test_every_form_of_a_number_gives_the_same_e164_in_every_region() -> None:
    """One contact, one key: a mismatch here would file consent under a different contact."""
    for region in REGIONS:
        number = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        international = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        assert to_e164(e164) == e164, region
        assert to_e164(international) == e164, region
        assert to_e164(national, region) == e164, region
        assert to_e164(wa_digits(e164)) == e164, region
        assert to_e164(wa_digits(e164), region) == e164, region  # a wa_id next to the billing country


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20), st.sampled_from([None, "DE", "US", "BR", "IN"]))
def test_anything_is_either_valid_e164_or_a_clear_error(raw: str, country: str | None) -> None:
    try:
        e164 = to_e164(raw, country)
    except InvalidPhoneError:
        return
    parsed = phonenumbers.parse(e164)
    assert phonenumbers.is_valid_number(parsed) and to_e164(e164) == e164


def test_contact_key_is_stable_secret_dependent_and_hides_the_number() -> None:
    key = contact_key("+4915112345678", b"secret-one-0123456")
    assert key == contact_key("+4915112345678", b"secret-one-0123456") and len(key) == 32
    assert key != contact_key("+4915112345678", b"secret-two-0123456")
    assert key != contact_key("+4915112345679", b"secret-one-0123456")
    assert "15112345678" not in key


def test_mask_keeps_only_country_code_and_last_digits() -> None:
    assert mask("+4915112345678") == "+49*********78"
    assert "151123456" not in mask("+4915112345678")
    assert mask(None) == "?"


def test_a_country_that_is_not_a_two_letter_code_is_a_clear_phone_error_not_a_crash():
    from connectzap.core.errors import InvalidPhoneError
    from connectzap.core.phones import to_e164
    for country in (1.5, "DEU", "1A"):
        with pytest.raises(InvalidPhoneError) as caught:
            to_e164("030 1234567", country)  # type: ignore[arg-type]
        assert caught.value.field == "country"
    assert to_e164("+4930123456", "") == "+4930123456"  # empty means not given
    with pytest.raises(InvalidPhoneError):
        to_e164(["+4915112345678"])  # type: ignore[arg-type]
