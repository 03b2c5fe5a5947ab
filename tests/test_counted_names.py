"""A list of names agrees in number with its noun: one unknown column is a "column", several are
"columns" (connectzap.core.wording), never "column(s)"."""

from __future__ import annotations

import pytest

from connectzap.connectors.hubspot.audience import list_id_of
from connectzap.connectors.woocommerce.audience import filter_of
from connectzap.core.campaigns.audience import BadLine, read_jsonl
from connectzap.core.consent_files import BadHeader, check_header
from connectzap.core.errors import PayloadError
from connectzap.core.store.bulk import _columns
from connectzap.core.store.schema import consents


def refusal(call, *args) -> str:
    with pytest.raises((BadHeader, PayloadError, ValueError)) as caught:
        call(*args)
    return str(getattr(caught.value, "message", None) or caught.value)


def test_consent_import_names_one_column_or_several() -> None:
    assert "unknown column 'number';" in refusal(check_header, ["number", "category", "granted"])
    assert "unknown columns 'number', 'consent';" in refusal(check_header, ["number", "consent"])
    assert refusal(check_header, ["phone", "category"]) == "missing column: granted"
    assert refusal(check_header, ["source"]) == "missing columns: phone, category, granted"


@pytest.mark.parametrize(("check", "source"), [
    (lambda options: filter_of(options, ["main"], "main"), "woocommerce"),
    (list_id_of, "hubspot_list")])
def test_an_audience_source_names_one_option_or_several(check, source: str) -> None:
    assert f"{source}: unknown option colour;" in refusal(check, {"colour": "red"})
    assert f"{source}: unknown options colour, size;" in refusal(check, {"colour": "red", "size": "L"})


def test_a_json_lines_audience_names_one_field_or_several() -> None:
    lines = ['{"phone": "+4915112345600", "name": "Ana"}', '{"phone": "+4915112345601", "name": "Bo", "age": 3}']
    bad = [row.reason for row in read_jsonl(lines, b"secret") if isinstance(row, BadLine)]
    assert bad == ["unknown field: name (use phone, country, params)",
                   "unknown fields: age, name (use phone, country, params)"]


def test_a_bulk_write_names_one_column_or_several() -> None:
    assert refusal(_columns, consents, [{"nope": 1}]) == "consents has no column ['nope']"
    assert refusal(_columns, consents, [{"nope": 1, "nah": 2}]) == "consents has no columns ['nah', 'nope']"
