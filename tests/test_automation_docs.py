"""docs/automation.md: every configuration in it starts an engine as written, and says what the prose says."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from automation_support import chats

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


@pytest.mark.parametrize("title", ["Business hours", "Welcome", "Away"])
def test_each_section_shows_spanish_portuguese_and_english_setups(title: str):
    examples = blocks(title, "toml")
    assert len(examples) == 3
    if title == "Business hours":
        zones = ["Europe/Madrid", "America/Sao_Paulo", "America/New_York"]
        assert [z for z, example in zip(zones, examples, strict=True) if z in example] == zones
    else:
        assert [f'default_language = "{lang}"' in ex for lang, ex in zip("es pt en".split(), examples, strict=True)] \
            == [True, True, True]


@pytest.fixture
def customers(make):
    return chats(make)


@pytest.mark.parametrize(("index", "customer"), [(0, "34612345678"), (1, "5511987654321"), (2, "16505551234")])
def test_the_welcome_and_away_examples_answer_as_written(tmp_path: Path, customers, index: int, customer: str):
    """Each language's business hours, welcome and away examples, read from one file as `serve` would."""
    hours, welcome, away = (blocks(title, "toml")[index] for title in ("Business hours", "Welcome", "Away"))
    config = tmp_path / "connectzap.toml"
    config.write_text("\n".join((hours, welcome, away)))
    settings = load_settings(config)
    chat = customers(business_hours=settings.business_hours.model_dump(), **settings.plugins)
    (welcome_text,) = settings.plugins["welcome"]["texts"].values()
    (away_text,) = settings.plugins["away"]["texts"].values()
    zone = chat.app.business_hours.zone
    sunday_noon = datetime(2026, 12, 6, 12, tzinfo=zone)   # closed in all three
    tuesday_11 = datetime(2026, 12, 1, 11, tzinfo=zone)    # open in all three
    chat.write(customer, tuesday_11.astimezone(UTC))
    assert chat.answers(customer) == [welcome_text]
    chat.write(customer, sunday_noon.astimezone(UTC))
    opening = chat.app.business_hours.next_opening(sunday_noon)
    assert opening is not None
    said = chat.answers(customer)[-1]
    prefix = away_text.split("{{")[0]
    assert len(chat.answers(customer)) == 2 and said.startswith(prefix)
    assert f"{opening.astimezone(zone).hour % 12 or 12}:00" in said   # the opening's hour, in words


def test_the_typing_indicator_off_switch_loads_as_written(tmp_path: Path):
    (toml,) = blocks("Read receipts and typing indicator", "toml")
    config = tmp_path / "connectzap.toml"
    config.write_text(toml)
    assert load_settings(config).automation.typing_indicator is False
    assert load_settings(None).automation.typing_indicator is True


def test_the_starter_configs_business_hours_block_works_uncommented(tmp_path: Path, make):
    starter = (Path(__file__).resolve().parents[1] / "connectzap" / "starter.toml").read_text(encoding="utf-8")
    block = starter.split("# Business hours, and the welcome and away messages", 1)[1].split("\n\n", 1)[0]
    toml = "\n".join(line.removeprefix("# ") for line in block.splitlines()[1:])
    config = tmp_path / "connectzap.toml"
    config.write_text(toml)
    settings = load_settings(config)
    app = make(business_hours=settings.business_hours.model_dump(), plugins=settings.plugins)
    assert app.business_hours.is_open(datetime(2026, 12, 4, 22, 30, tzinfo=UTC))   # Friday 23:30 in Madrid
    assert app.plugin_settings["away"].enabled and app.plugin_settings["welcome"].after_silence_days == 90
