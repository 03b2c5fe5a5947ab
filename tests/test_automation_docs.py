"""docs/automation.md: every configuration in it starts an engine as written, and says what the prose says."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from connectzap import InboundMessage, load_settings
from connectzap.testing import sample_event

DOC = Path(__file__).resolve().parents[1] / "docs" / "automation.md"
BLOCK = re.compile(r"```(?P<lang>toml|python)\n(?P<body>.*?)```", re.S)


def section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def blocks(title: str, lang: str) -> list[str]:
    return [m["body"] for m in BLOCK.finditer(section(title)) if m["lang"] == lang]


def started(tmp_path: Path, toml: str, make: Any, sub: str) -> Any:
    """An engine on the example's configuration, read from a file as `serve` reads it."""
    config = tmp_path / f"{sub}.toml"
    config.write_text(toml)
    settings = load_settings(config)
    return make(sub, business_hours=settings.business_hours.model_dump(), plugins=settings.plugins)


def test_the_business_hours_examples_load_as_written(tmp_path: Path, make):
    examples = blocks("Business hours", "toml")
    assert len(examples) == 3
    apps = [started(tmp_path, toml, make, f"example{n}") for n, toml in enumerate(examples)]
    madrid, sao_paulo, new_york = (app.business_hours for app in apps)
    assert str(madrid.zone) == "Europe/Madrid" and str(sao_paulo.zone) == "America/Sao_Paulo"
    tuesday_10_30_madrid = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    assert madrid.is_open(tuesday_10_30_madrid)
    assert not madrid.is_open(datetime(2026, 12, 8, 9, 30, tzinfo=UTC))   # a holiday in the list
    assert sao_paulo.is_open(datetime(2026, 12, 5, 3, 30, tzinfo=UTC))    # Friday's late shift, 00:30 Saturday
    assert new_york.next_opening(datetime(2026, 11, 26, 15, tzinfo=UTC)) == datetime(2026, 11, 27, 14, tzinfo=UTC)


def test_the_business_hours_plugin_example_runs_as_written(tmp_path: Path, make):
    (code,) = blocks("Business hours", "python")
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # the doc's own example
    app = make(business_hours={"timezone": "Europe/Madrid", "monday": ["09:00-14:00"]})
    event = sample_event("inbound_message", timestamp="2026-12-06T12:00:00+00:00")   # a Sunday
    notes: list[tuple[str, str]] = []
    ctx = SimpleNamespace(business_hours=app.business_hours, note=lambda code, detail: notes.append((code, detail)))
    namespace["on_inbound_message"](InboundMessage.model_validate(event.data), ctx)
    assert notes == [("closed", "next opening 2026-12-07 08:00 UTC")]


@pytest.mark.parametrize("title", ["Business hours"])
def test_each_section_shows_spanish_portuguese_and_english_setups(title: str):
    text = section(title)
    assert "Europe/Madrid" in text and "America/Sao_Paulo" in text and "America/New_York" in text
