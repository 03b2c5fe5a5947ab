"""``connectzap doctor`` warns before the configured Graph API version is retired (dates from
Meta's Graph API versions table, see connectzap.connectors.whatsapp.api_versions)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from connectzap.cli import cli
from connectzap.connectors.whatsapp.api_versions import END_OF_LIFE, WARN_DAYS, newest, warning
from connectzap.connectors.whatsapp.settings import WhatsAppSettings
from connectzap.core.clock import use_clock

DATED = {version: ends for version, ends in END_OF_LIFE.items() if ends is not None}


@given(version=st.sampled_from(sorted(DATED)), offset=st.integers(-400, 400))
def test_a_known_version_warns_exactly_within_90_days_of_its_end_or_after(version, offset):
    ends = DATED[version]
    found = warning(version, ends - timedelta(days=offset))
    if offset > WARN_DAYS:
        assert found is None
    else:
        assert found is not None and version in found and ends.isoformat() in found
        assert ("reached" in found) == (offset < 0)


def test_versions_without_an_announced_end_and_unknown_versions():
    assert warning(newest(), date(2030, 1, 1)) is None  # Meta has not dated it yet
    assert newest() == "v27.0"
    assert warning("v26.0", date(2030, 1, 1)) is None  # nor this one (its successor is a month old)
    for odd in ("v99.0", "v23", "latest", ""):
        found = warning(odd, date(2026, 12, 2))
        assert found is not None and "unknown" in found


def test_the_default_version_is_not_about_to_end():
    default = WhatsAppSettings().api_version
    assert default in END_OF_LIFE and default == newest()  # the default is the newest version Meta serves
    assert WhatsAppSettings().doctor_warnings(date(2026, 12, 2)) == []
    assert WhatsAppSettings(api_version="v20.0").doctor_warnings(date(2026, 9, 1))  # 23 days left
    assert WhatsAppSettings(api_version="v20.0", enabled=False).doctor_warnings(date(2026, 9, 1)) == []


@pytest.mark.parametrize(("version", "today", "expected"), [
    ("v21.0", date(2026, 12, 2), "reaches its end of life on 2027-01-21 (50 days)"),
    ("v21.0", date(2027, 1, 20), "reaches its end of life on 2027-01-21 (1 day)"),
    ("v23.0", date(2026, 12, 2), None),
    ("v27.0", date(2026, 12, 2), None),
    ("v7.5", date(2026, 12, 2), "'v7.5' is unknown"),
])
def test_doctor_prints_the_warning_for_the_day_it_runs(tmp_path: Path, version, today, expected):
    config = tmp_path / "connectzap.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[sandbox]\nquiet = true\n'
                      f'[connectors.whatsapp]\napi_version = "{version}"\n')
    noon = datetime(today.year, today.month, today.day, 12, tzinfo=UTC).timestamp()
    with use_clock(lambda: noon):
        result = CliRunner().invoke(cli, ["--config", str(config), "doctor"])
    assert result.exit_code == 0, result.output
    if expected is None:
        assert "api_version" not in result.output and result.output.strip().endswith("ok")
    else:
        assert "warning: connectors.whatsapp.api_version" in result.output and expected in result.output
        assert result.output.rstrip().endswith("\n1 warning")
