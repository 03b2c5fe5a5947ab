"""Meta re-categorises a template (UTILITY found to be MARKETING), announcing it 24 hours ahead with
``template_category_update``: from the announced time the gate applies the new category's consent
rule, and the operator is warned before then (log, ``connectzap events``, ``on_template_update``).
Fixtures built from Meta's reference (tests/payloads/whatsapp/README.md)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from connectzap import Category, ConsentChange, Outgoing, TemplateContent, hookimpl
from connectzap.connectors.whatsapp import webhooks
from connectzap.core import clock, templates
from connectzap.core.worker import Worker
from connectzap.testing import registered_plugin, seed_template

FIXTURES = Path(__file__).parent / "payloads" / "whatsapp"
PHONE = "+4915112345678"
ANNOUNCED = 1750500100.0  # entry.time of template_category_impending.json
EFFECTIVE = 1750759200.0  # its category_update_timestamp


def webhook(app: Any, name: str) -> None:
    app.ingest(webhooks.parse_body((FIXTURES / f"{name}.json").read_bytes()))


def shipped(**extra: Any) -> Outgoing:
    return Outgoing(to=PHONE, content=TemplateContent(name="order_shipped", language="en", body=["42"]), **extra)


def utility_only(app: Any) -> None:
    seed_template(app, "order_shipped", "Order {{1}} is on its way.", category="UTILITY")
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="t", proof="box"))


async def test_new_category_rule_applies_from_the_announced_time(app):
    t = [ANNOUNCED]
    with clock.use_clock(lambda: t[0]):
        utility_only(app)
        webhook(app, "template_category_impending")
        await Worker(app).run_until_idle()
        with app.db.read() as conn:
            info = templates.get(conn, "order_shipped", "en")
        assert info is not None and (info.category, info.pending_category) == ("UTILITY", "MARKETING")
        before = app.send(shipped(), idempotency_key="before")
        assert before.status == "queued"  # still UTILITY: utility consent suffices
        later = app.send(shipped(not_before=_at(EFFECTIVE + 60)), idempotency_key="later")
        assert later.status == "queued"  # admitted now, judged again when due
        await Worker(app).run_until_idle()
        assert len(app.channel.sent()) == 1

        t[0] = EFFECTIVE + 120  # the change took effect (Meta has not reported it done yet)
        await Worker(app).run_until_idle()
        assert (app.message(later.id)["status"], app.message(later.id)["reason"]) == ("refused", "no_consent")
        assert app.send(shipped(), idempotency_key="after").reason == "no_consent"
        app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="t",
                                      proof="form"))
        ok = app.send(shipped(), idempotency_key="with marketing consent")
        assert ok.status == "queued"
        await Worker(app).run_until_idle()
        assert len(app.channel.sent()) == 2
        assert app.message(ok.id)["category"] == "marketing"


async def test_completed_change_replaces_the_announced_one(app):
    with clock.use_clock(lambda: ANNOUNCED):
        utility_only(app)
        webhook(app, "template_category_impending")
        webhook(app, "template_category_completed")
        await Worker(app).run_until_idle()
        with app.db.read() as conn:
            info = templates.get(conn, "order_shipped", "en")
        assert info is not None
        assert (info.category, info.pending_category, info.category_effective_at) == ("MARKETING", None, None)
        assert app.send(shipped()).reason == "no_consent"  # MARKETING at once, whatever the clock says


async def test_operator_is_warned_before_it_takes_effect(app, caplog):
    heard: list[Any] = []

    class Owner:
        @hookimpl
        def on_template_update(self, update):
            heard.append(update)

    with clock.use_clock(lambda: ANNOUNCED), registered_plugin(Owner()):
        utility_only(app)
        caplog.set_level(logging.WARNING, logger="connectzap.bookkeeping")
        webhook(app, "template_category_impending")
        await Worker(app).run_until_idle()
    [update] = heard
    assert (update.correct_category, update.category_update_timestamp) == ("MARKETING", EFFECTIVE)
    [record] = [r for r in caplog.records if r.getMessage() == "template category change announced"]
    assert record.levelno == logging.WARNING and "2025-06-24 10:00 UTC" in record.fields["detail"]
    [event] = app.events(kind="template_update")
    assert "becomes MARKETING (now UTILITY) on 2025-06-24 10:00 UTC" in event.outcome
    assert "marketing consent" in event.outcome


def test_category_at_switches_exactly_at_the_effective_time():
    info = templates.TemplateInfo(name="x", language="en", category="UTILITY", pending_category="MARKETING",
                                  category_effective_at=EFFECTIVE)
    assert [info.category_at(EFFECTIVE - 1), info.category_at(EFFECTIVE)] == ["UTILITY", "MARKETING"]
    assert templates.TemplateInfo(name="x", language="en").category_at(EFFECTIVE) == "UTILITY"


def _at(seconds: float) -> Any:
    from datetime import UTC, datetime
    return datetime.fromtimestamp(seconds, UTC)
