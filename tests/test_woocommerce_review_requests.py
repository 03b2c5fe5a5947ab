"""Review requests (issue #20, item 6): N days after an order is completed, the order is read again
and the customer asked for a review -- once per order ever, never after a refund or cancellation,
and the order says what happened (cassettes built from WooCommerce's REST reference by
cassettes/woocommerce/build.py). Time moves with the engine's clock, never by sleeping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import vcr
from hypothesis import given
from hypothesis import strategies as st
from test_order_notifications import ANA, deliver
from test_woocommerce_notes import CASSETTES
from test_woocommerce_webhooks import payload, shop_config

from connectzap.connectors.woocommerce import review_requests
from connectzap.connectors.woocommerce.review_settings import ReviewRequestSettings
from connectzap.core import clock
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

COMPLETED = datetime(2026, 3, 4, 16, 2, 11, tzinfo=UTC)  # date_modified_gmt of order_updated_completed.json
REVIEWS = {"enabled": True, "days_after_completion": 7, "template": "review_request", "language": "en",
           "languages": {"es": "es"}, "params": ["{{ first_name }}", "{{ product_name }}"],
           "buttons": [{"index": 0, "text": "{{ review_path }}"}]}
review_vcr = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="none",
                     match_on=["method", "scheme", "host", "port", "path", "query", "body"],
                     filter_headers=["authorization"])


class Clock:
    """The engine's clock, moved by hand."""

    def __init__(self, at: datetime) -> None:
        self.t = at.timestamp()

    def move(self, **delta: float) -> None:
        self.t += timedelta(**delta).total_seconds()


@contextmanager
def frozen(at: datetime) -> Iterator[Clock]:
    moved = Clock(at)
    with clock.use_clock(lambda: moved.t):
        yield moved


@pytest.fixture
def shop(make):
    def build(**reviews: object):
        app = make(connectors={"woocommerce": {"shops": {"main": shop_config()},
                                               "review_requests": {**REVIEWS, **reviews}}})
        for language, text in (("en", "Hi {{1}}, how do you like your {{2}}?"), ("es", "Hola {{1}}, ¿qué tal {{2}}?")):
            seed_template(app, "review_request", text, language=language, extra_components=[
                {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Review",
                                                 "url": "https://shop.example.com/{{1}}"}]}])
        return app
    return build


def reviews_sent(app) -> list[dict]:
    return [b["template"] for b in app.channel.sent()
            if b["type"] == "template" and b["template"]["name"] == "review_request"]


def posted_notes(cassette) -> list[str]:
    return [json.loads(r.body)["note"] for r in cassette.requests if r.method == "POST"]


async def run(app) -> None:
    await Worker(app).run_until_idle()


async def test_sent_once_n_days_after_completion_and_never_again(shop):
    app = shop()
    with frozen(COMPLETED + timedelta(minutes=5)) as now:
        await deliver(app, "order_updated_completed.json", delivery="c1")
        await deliver(app, "order_updated_completed.json", delivery="c1")  # the same delivery
        await deliver(app, "order_updated_completed.json", delivery="c2")  # WooCommerce sending it again
        [due] = app.events(kind="resolve")
        assert due.subject == "the review request for order 1042 of shop main" and due.status == "pending"
        now.move(days=6, hours=23)
        with review_vcr.use_cassette("review_sent.yaml") as cassette:
            await run(app)
            assert cassette.play_count == 0 and reviews_sent(app) == []  # not due yet
            now.move(hours=1)
            await run(app)
            assert cassette.all_played and posted_notes(cassette) == [
                "WhatsApp review request sent (template review_request)."]
        [sent] = reviews_sent(app)
        assert sent["language"]["code"] == "es"  # billing country ES
        [body] = [c for c in sent["components"] if c["type"] == "body"]
        assert [p["text"] for p in body["parameters"]] == ["Ana", "Organic Coffee Beans 1kg"]
        [button] = [c for c in sent["components"] if c["type"] == "button"]
        assert button["parameters"] == [{"type": "text", "text": "product/organic-coffee-beans-1kg/#reviews"}]
        [message] = [m for m in app.messages(phone=ANA) if m["template_name"] == "review_request"]
        assert json.loads(message["origin"])["flow"] == "review_request"
        # re-opened and completed again, replayed, weeks later: nothing more is scheduled or sent
        await deliver(app, {**payload("order_updated_completed.json"), "status": "processing"}, delivery="p1")
        await deliver(app, "order_updated_completed.json", delivery="c3")
        now.move(days=30)
        await run(app)  # no cassette: any request to the shop would fail the test
    assert len(reviews_sent(app)) == 1


async def test_a_scheduled_request_survives_a_restart(shop, make, backend):
    if backend != "sqlite":
        pytest.skip("a second engine on the same database: the test kit gives each PostgreSQL engine a fresh schema")
    app = shop()
    with frozen(COMPLETED) as now:
        await deliver(app, "order_updated_completed.json", delivery="c1")
        app.close()  # the process ends with the request scheduled
        restarted = make(connectors={"woocommerce": {"shops": {"main": shop_config()}, "review_requests": REVIEWS}})
        now.move(days=8)
        with review_vcr.use_cassette("review_sent.yaml") as played:
            await run(restarted)
        assert played.all_played
    assert len(reviews_sent(restarted)) == 1


@pytest.mark.parametrize(("cassette", "note"), [
    ("review_refunded.yaml", "WhatsApp review request not sent: the order is refunded."),
    ("review_cancelled.yaml", "WhatsApp review request not sent: the order is cancelled."),
    ("review_partial_refund.yaml", "WhatsApp review request not sent: the order has refunds."),
])
async def test_not_sent_when_the_order_was_refunded_or_cancelled_meanwhile(shop, cassette, note):
    app = shop()
    with frozen(COMPLETED) as now:
        await deliver(app, "order_updated_completed.json", delivery="c1")
        now.move(days=8)
        with review_vcr.use_cassette(cassette) as played:
            await run(app)
        assert posted_notes(played) == [note]
        await deliver(app, "order_updated_completed.json", delivery="c2")  # completed again: still never
        now.move(days=8)
        await run(app)
    assert reviews_sent(app) == []


async def test_a_reopened_order_is_asked_after_its_next_completion(shop):
    app = shop()
    with frozen(COMPLETED) as now:
        await deliver(app, "order_updated_completed.json", delivery="c1")
        now.move(days=8)
        with review_vcr.use_cassette("review_reopened.yaml") as played:
            await run(app)
        assert len(posted_notes(played)) == 1 and reviews_sent(app) == []
        later = {**payload("order_updated_completed.json"), "date_modified_gmt": "2026-03-13T10:00:00"}
        await deliver(app, later, delivery="c2")
        now.move(days=8)
        with review_vcr.use_cassette("review_sent.yaml"):
            await run(app)
    assert len(reviews_sent(app)) == 1


async def test_an_opted_out_customer_is_not_asked_and_the_order_says_why(shop):
    from connectzap import Category, ConsentChange
    app = shop()
    with frozen(COMPLETED) as now:
        await deliver(app, "order_updated_completed.json", delivery="c1")
        now.move(days=1)
        app.set_consent(ConsentChange(phone=ANA, category=Category.UTILITY, granted=False, source="whatsapp-keyword",
                                      at=datetime.fromtimestamp(now.t, UTC)))
        now.move(days=7)
        with review_vcr.use_cassette("review_opted_out.yaml") as played:
            await run(app)
        assert played.all_played
    assert reviews_sent(app) == []


async def test_a_template_of_another_category_is_not_sent(shop):
    app = shop(category="marketing")  # the seeded template is UTILITY (as if Meta had re-categorised it)
    with frozen(COMPLETED) as now:
        await deliver(app, "order_updated_completed.json", delivery="c1")
        now.move(days=8)
        with review_vcr.use_cassette("review_wrong_category.yaml") as played:
            await run(app)
        assert played.all_played
    assert reviews_sent(app) == []


async def test_off_by_default_schedules_nothing(make):
    app = make(connectors={"woocommerce": {"shops": {"main": shop_config()}}})
    await deliver(app, "order_updated_completed.json", delivery="c1")
    assert app.events(kind="resolve") == []


def test_enabled_without_a_template_is_refused():
    with pytest.raises(ValueError, match="needs a template"):
        ReviewRequestSettings(enabled=True)


ORDER = payload("order_updated_completed.json")


@given(status=st.sampled_from(["completed", "processing", "on-hold", "cancelled", "refunded", "failed", "trash"]),
       refunds=st.lists(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("45.90"), places=2), max_size=3),
       skip_partial=st.booleans())
def test_the_verdict_never_sends_after_a_cancel_or_a_full_refund(status, refunds, skip_partial):
    data = {**ORDER, "status": status, "refunds": [{"id": n, "total": f"-{r}"} for n, r in enumerate(refunds)]}
    verdict = review_requests.decide(data, ReviewRequestSettings(skip_partial_refunds=skip_partial))
    fully = sum(refunds, Decimal(0)) >= Decimal("45.90")
    if status in review_requests.NEVER_STATUSES or fully or (refunds and skip_partial):
        assert verdict.action == "never"
    elif status != "completed":
        assert verdict.action == "later"
    else:
        assert verdict.action == "send"


async def test_a_simulation_schedules_nothing_and_says_what_it_would_schedule(make):
    from connectzap.core.simulation import Simulation
    app = make(simulation=Simulation(),
               connectors={"woocommerce": {"shops": {"main": shop_config()}, "review_requests": REVIEWS}})
    with frozen(COMPLETED):
        await deliver(app, "order_updated_completed.json", delivery="c1")
    assert app.events(kind="resolve") == []
    notes = [r.call.note or "" for r in app.simulation.rehearsed if r.target == "woocommerce"]
    assert notes == ["schedule the review request of order 1042 for 2026-03-11 16:02 UTC"]


@pytest.mark.parametrize(("days", "said"), [(1, "1 day"), (2, "2 days")])
async def test_the_scheduled_note_agrees_in_number(shop, days, said):
    """It said "due in 1 day(s)"."""
    app = shop(days_after_completion=days)
    with frozen(COMPLETED + timedelta(minutes=5)):
        await deliver(app, "order_updated_completed.json", delivery="c1")
    notes = [(n.code, n.detail) for e in app.events() for d in app.event(e.id).deliveries for n in d.notes]
    assert ("review_scheduled", f"review request of order 1042 due in {said}") in notes
