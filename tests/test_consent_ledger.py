"""The consent ledger at equal timestamps: the last change applied decides."""

from __future__ import annotations

from datetime import UTC, datetime

from connectzap import Category, ConsentChange, Event, EventKind
from connectzap.core.worker import Worker

PHONE = "+12025550123"
AT = datetime(2026, 11, 24, 12, tzinfo=UTC)


def change(granted: bool, source: str = "crm") -> ConsentChange:
    return ConsentChange(phone=PHONE, category=Category.MARKETING, granted=granted, source=source, proof="form", at=AT)


async def test_a_repeated_opt_out_after_an_opt_in_at_the_same_time_wins(app):
    # opt-out, opt-in, then the same opt-out again: the repeat is a real change, not a replay
    for n, (granted, source) in enumerate(((False, "crm"), (True, "shop"), (False, "crm"))):
        app.ingest([Event(kind=EventKind.LEAD, source="crm", dedupe_key=f"lead-{n}",
                          consents=[change(granted, source)], data={"id": "1", "contact": {"phone": PHONE}})])
        await Worker(app).run_until_idle()
    assert app.consent(PHONE)[Category.MARKETING].granted is False


async def test_connectzaps_own_notification_does_not_record_a_change_again(app):
    from connectzap.core import consent as ledger
    app.set_consent(change(True, "api"))  # recorded now; its notification waits in the journal
    # A later opt-out enters the ledger directly, with no notification of its own (the way the
    # sender records WhatsApp's 131050 when nothing listens for consent changes).
    with app.db.begin() as conn:
        ledger.record(app.db, conn, app.contact_key(PHONE), change(False, "whatsapp:131050"))
    await Worker(app).run_until_idle()  # the grant's notification reaches the hooks, not the ledger
    assert app.consent(PHONE)[Category.MARKETING].granted is False
    assert [r.granted for r in app.consent_history(PHONE)] == [True, False]


async def test_a_later_repeat_keeps_an_older_late_change_from_winning(app):
    """Found by the gate's liveness property: a grant repeated an hour later was dropped as a
    repeat, so an opt-out given in between (arriving last) outranked the newer grant."""
    from datetime import timedelta

    def at(minutes: int, granted: bool) -> ConsentChange:
        return change(granted, "shop").model_copy(update={"at": AT + timedelta(minutes=minutes)})

    assert app.set_consent(at(0, True)) is True
    assert app.set_consent(at(60, True)) is False  # the same state: nothing to tell the hooks ...
    app.set_consent(at(30, False))  # ... yet it is the newest word: this older opt-out arrives late
    assert app.consent(PHONE)[Category.MARKETING].granted is True
    assert app.consent(PHONE)[Category.MARKETING].at == AT + timedelta(minutes=60)
    assert app.set_consent(at(45, True)) is False  # an older repeat changes nothing and is not kept
    assert [(r.granted, (r.at - AT).seconds // 60) for r in app.consent_history(PHONE)] == [
        (True, 0), (False, 30), (True, 60)]
