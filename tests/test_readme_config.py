"""The README's configuration table names every key of every core section, and only real ones.

A key missing from the table is a setting nobody finds (``[api] host``/``port`` were); a key in
the table that the model does not have is a typo a user copies into a config that then fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from connectzap.connectors.whatsapp.settings import WhatsAppSettings
from connectzap.core.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"
ROW = re.compile(r"^\| `\[(?P<section>[a-z_.]+)\]` \| (?P<keys>.*) \|$")
# Top-level keys that are not user settings: where the file was read from.
NOT_SETTINGS = {"config_path"}


def table() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    body = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {m["section"]: m["keys"] for line in body.splitlines() if (m := ROW.match(line))}
    top = next(line for line in body.splitlines() if line.startswith("| top level |"))
    rows[""] = top
    return rows


def documented_keys(cell: str) -> set[str]:
    """Keys are the backticked words written as ``name`` before their explanation."""
    return {word for word in re.findall(r"`([a-z][a-z0-9_]*)`", cell)}


def core_sections() -> dict[str, type[BaseModel]]:
    out: dict[str, type[BaseModel]] = {}
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out[name] = annotation
    return out


@pytest.mark.parametrize("section", sorted(core_sections()))
def test_every_key_of_a_core_section_is_in_the_readme_table(section: str) -> None:
    rows = table()
    assert section in rows, f"README's configuration table has no [{section}] row"
    fields = set(core_sections()[section].model_fields)
    written = documented_keys(rows[section])
    assert fields - written == set(), f"[{section}] keys missing from README: {sorted(fields - written)}"


def test_the_api_row_lists_exactly_the_api_keys() -> None:
    from connectzap.core.settings import ApiSettings
    assert documented_keys(table()["api"]) == set(ApiSettings.model_fields)


def test_the_whatsapp_row_and_top_level_keys_are_complete() -> None:
    rows = table()
    whatsapp = set(WhatsAppSettings.model_fields) - {"enabled"}
    assert whatsapp - documented_keys(rows["connectors.whatsapp"]) == set()
    top = {n for n, f in Settings.model_fields.items() if n not in core_sections() and n not in NOT_SETTINGS
           and n not in ("connectors", "plugins")}
    assert top - documented_keys(rows[""]) == set()


def test_no_row_names_a_key_that_does_not_exist() -> None:
    rows = table()
    sections = core_sections()
    for section, cell in rows.items():
        if section in sections:
            # Values written in backticks (`sqlite:///...`) are not keys; only bare identifiers are
            # checked, and a mention of a top-level key (`data_dir`) is a cross-reference.
            unknown = documented_keys(cell) - set(sections[section].model_fields) - set(Settings.model_fields)
            assert unknown == set(), f"[{section}] row names unknown keys {sorted(unknown)}"


def test_the_hubspot_guide_names_every_hubspot_key() -> None:
    from connectzap.connectors.hubspot.settings import HubSpotSettings
    guide = (README.parent / "docs" / "hubspot.md").read_text(encoding="utf-8")
    missing = [name for name in HubSpotSettings.model_fields
               if name != "enabled" and not re.search(rf"^#? ?{name} = ", guide, re.MULTILINE)
               and f"`{name}`" not in guide and f"[connectors.hubspot.{name}." not in guide]
    assert missing == [], f"docs/hubspot.md does not document {missing}"


@pytest.mark.parametrize("section", ["review_requests", "order_lookup"])
def test_the_woocommerce_order_flows_are_in_the_readme_table(section: str) -> None:
    from connectzap.connectors.woocommerce.settings import WooCommerceSettings
    model = WooCommerceSettings.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    assert documented_keys(table()[f"connectors.woocommerce.{section}"]) >= set(model.model_fields)


def test_the_email_row_lists_exactly_the_email_keys() -> None:
    from connectzap.connectors.email import EmailSettings
    assert documented_keys(table()["connectors.email"]) == set(EmailSettings.model_fields) - {"enabled"} | {
        "starttls", "tls", "none"}


def test_the_sms_row_and_guide_name_every_sms_key() -> None:
    from connectzap.connectors.sms.settings import SmsSettings
    keys = set(SmsSettings.model_fields) - {"enabled"}
    assert keys - documented_keys(table()["connectors.sms"]) == set()
    guide = (README.parent / "docs" / "sms.md").read_text(encoding="utf-8")
    assert [name for name in sorted(keys) if f"| `{name}` |" not in guide] == []
