"""Cash-on-delivery confirmation (issue #20, item 5): a COD order asks its customer to confirm or
cancel with one tap; the tap sets the order's status through the REST API of a local stand-in shop
and notes it on the order, once -- whatever the taps, replays, reminders and timeouts around it."""

from __future__ import annotations

import copy
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from automation_support import CUSTOMER, WHATSAPP, deliver_signed, envelope
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_woocommerce_notes import deliveries
from test_woocommerce_webhooks import payload, shop_config, wc_request
from woocommerce_shop_support import FakeShop

from connectzap.connectors.woocommerce import cod
from connectzap.core import clock, ingress
from connectzap.core.models import EventKind
from connectzap.testing import run, seed_template

ORDER_ID = "1042"
OTHER = "34699887766"
BUTTONS = [{"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Confirm"},
                                           {"type": "QUICK_REPLY", "text": "Cancel"}]}]
COD: dict[str, Any] = {"enabled": True, "template": "cod_confirmation", "language": "en",
                       "params": ["{{ first_name }}", "{{ number }}", "{{ total_with_currency }}"],
                       "minimum_total": 20, "reminder_hours": 6, "timeout_hours": 24}
_wamids = itertools.count(1)
_orders = itertools.count(5000)


class Clock:
    """The engine's clock, moved by hand."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t

    def hours(self, hours: float) -> None:
        self.t += hours * 3600


@pytest.fixture
def shop() -> Iterator[FakeShop]:
    with FakeShop() as fake:
        yield fake


@pytest.fixture
def now() -> Iterator[Clock]:
    moved = Clock()
    with clock.use_clock(moved):
        yield moved


def cod_order(**changes: Any) -> dict[str, Any]:
    order = payload("order_created_classic.json")
    order.update({"status": "pending", "payment_method": "cod", "payment_method_title": "Cash on delivery",
                  "date_paid": None, "transaction_id": "", **changes})
    return order


def build(make, shop: FakeShop, sub: str = "app", **cod_changes: Any):
    app = make(sub, connectors={**WHATSAPP, "woocommerce": {"shops": {"main": shop_config(
        url=shop.url, cod={**COD, **cod_changes})}}})
    seed_template(app, "cod_confirmation", "Hi {{1}}, please confirm order {{2}} ({{3}}), paid on delivery.",
                  extra_components=BUTTONS)
    seed_template(app, "cod_reminder", "Order {{2}} still waits for your answer, {{1}} ({{3}}).",
                  extra_components=BUTTONS)
    return app


def place(app, shop: FakeShop, order: dict[str, Any], delivery: str = "d1") -> None:
    """The shop has the order, and its order.created webhook arrives."""
    shop.add(order)
    response = ingress.handle(app.connectors["woocommerce"],
                              wc_request(json.dumps(order).encode(), topic="order.created", delivery=delivery),
                              app.ingest)
    assert response.status == 200, response.body
    run(app)


def questions(app) -> list[dict[str, Any]]:
    return [b["template"] for b in app.channel.sent() if b["type"] == "template"]


def texts(app, to: str = CUSTOMER) -> list[str]:
    return [b["text"]["body"] for b in app.channel.sent() if b["type"] == "text" and b["to"] == to]


def button_payloads(template: dict[str, Any]) -> dict[int, str]:
    return {int(c["index"]): c["parameters"][0]["payload"] for c in template["components"]
            if c["type"] == "button" and c["sub_type"] == "quick_reply"}


def tap_webhook(app, answer: str, *, wa_id: str = CUSTOMER, forged_payload: str | None = None) -> dict[str, Any]:
    [first, *_] = questions(app)
    chosen = button_payloads(first)[0 if answer == "confirm" else 1]
    return envelope({"id": f"wamid.cod{next(_wamids)}", "timestamp": str(int(clock.now())), "type": "button",
                     "button": {"payload": forged_payload or chosen, "text": answer.title()}}, wa_id=wa_id)


def tap(app, answer: str, **kw: Any) -> dict[str, Any]:
    webhook = tap_webhook(app, answer, **kw)
    deliver_signed(app, copy.deepcopy(webhook))
    run(app)
    return webhook


def later(app, now: Clock, hours: float) -> None:
    now.hours(hours)
    run(app)


# --- asking ------------------------------------------------------------------------------------

def test_a_cod_order_is_asked_once_with_two_signed_quick_replies(make, shop, now) -> None:
    app = build(make, shop)
    place(app, shop, cod_order())
    place(app, shop, cod_order(), delivery="d2")  # WooCommerce delivering order.created again
    [question] = questions(app)
    assert question["name"] == "cod_confirmation"
    body = next(c for c in question["components"] if c["type"] == "body")
    assert [p["text"] for p in body["parameters"]] == ["Ana", ORDER_ID, "45.90 EUR"]
    secret = app.secret
    assert button_payloads(question) == {0: cod.payload(secret, "main", ORDER_ID, "confirm"),
                                         1: cod.payload(secret, "main", ORDER_ID, "cancel")}
    assert shop.status_changes == [] and shop.note_texts(ORDER_ID) == []


@pytest.mark.parametrize("changes", [{"payment_method": "stripe"}, {"total": "19.99"}, {"status": "processing"}],
                         ids=["not-cod", "under-minimum", "not-awaiting"])
def test_orders_that_do_not_qualify_are_not_asked_and_never_changed(make, shop, now, changes) -> None:
    app = build(make, shop, timeout_action="cancel")
    place(app, shop, cod_order(**changes))
    later(app, now, 30)
    assert questions(app) == [] and shop.status_changes == [] and shop.note_texts(ORDER_ID) == []
    [asked] = deliveries(app, "connector:woocommerce")
    assert json.loads(asked["result"])["notes"][0]["code"] == "cod_not_asked"


def test_without_consent_nothing_is_sent_and_the_timeout_leaves_the_order_alone(make, shop, now) -> None:
    app = build(make, shop, timeout_action="cancel")
    order = cod_order(meta_data=[m for m in cod_order()["meta_data"] if "optin" not in m["key"]])
    place(app, shop, order)
    assert questions(app) == []
    [refused] = app.messages(phone="+" + CUSTOMER)
    assert (refused["status"], refused["reason"]) == ("refused", "no_consent")
    later(app, now, 30)
    assert app.channel.sent() == [] and shop.status_changes == [] and shop.note_texts(ORDER_ID) == []


# --- answers -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("answer", "status", "word"), [("confirm", "processing", "confirmed"),
                                                       ("cancel", "cancelled", "cancelled")])
def test_a_tap_sets_the_status_notes_it_and_thanks_the_customer(make, shop, now, answer, status, word) -> None:
    app = build(make, shop)
    place(app, shop, cod_order())
    tap(app, answer)
    assert shop.status_changes == [(ORDER_ID, status)]
    [note] = shop.note_texts(ORDER_ID)
    assert note.startswith(f"The customer {word} the cash-on-delivery order on WhatsApp at ") and note.endswith("UTC.")
    assert shop.notes[ORDER_ID][0]["customer_note"] is False
    assert texts(app) == [f"Thank you! Order {ORDER_ID} is confirmed: we will deliver it soon." if answer == "confirm"
                          else f"Order {ORDER_ID} is cancelled, as you asked."]
    later(app, now, 30)  # neither the reminder nor the timeout after an answer
    assert len(questions(app)) == 1 and shop.status_changes == [(ORDER_ID, status)]
    assert len(shop.note_texts(ORDER_ID)) == 1


def test_a_second_tap_changes_nothing_and_says_the_current_status(make, shop, now) -> None:
    app = build(make, shop)
    place(app, shop, cod_order())
    tap(app, "confirm")
    tap(app, "confirm")
    tap(app, "cancel")
    assert shop.status_changes == [(ORDER_ID, "processing")] and len(shop.note_texts(ORDER_ID)) == 1
    assert texts(app)[1:] == [f"Order {ORDER_ID} can no longer be changed here: it is processing."] * 2


def test_a_replayed_tap_webhook_acts_and_answers_once(make, shop, now) -> None:
    app = build(make, shop)
    place(app, shop, cod_order())
    webhook = tap(app, "cancel")
    deliver_signed(app, copy.deepcopy(webhook))  # Meta delivering the same message again
    run(app)
    assert shop.status_changes == [(ORDER_ID, "cancelled")] and len(texts(app)) == 1


def test_a_tap_from_another_number_is_refused(make, shop, now) -> None:
    app = build(make, shop)
    place(app, shop, cod_order())
    tap(app, "cancel", wa_id=OTHER)  # the payload forwarded to, or copied by, someone else
    assert shop.status_changes == [] and shop.note_texts(ORDER_ID) == [] and texts(app, OTHER) == []
    tap(app, "confirm")  # the customer can still answer
    assert shop.status_changes == [(ORDER_ID, "processing")]


def test_a_payload_made_up_for_another_order_is_refused(make, shop, now) -> None:
    app = build(make, shop)
    place(app, shop, cod_order())
    place(app, shop, cod_order(id=1043, number="1043"), delivery="d2")
    token = cod.token(app.secret, "main", ORDER_ID, "cancel")
    tap(app, "cancel", forged_payload=f"cod:main:1043:cancel:{token}")  # 1042's token on 1043
    assert shop.status_changes == [] and texts(app) == []


def test_a_tap_after_the_shop_moved_the_order_on_changes_nothing(make, shop, now) -> None:
    app = build(make, shop)
    place(app, shop, cod_order())
    shop.set_status(ORDER_ID, "completed")
    tap(app, "cancel")
    assert shop.status(ORDER_ID) == "completed" and shop.status_changes == [] and shop.note_texts(ORDER_ID) == []
    assert texts(app) == [f"Order {ORDER_ID} can no longer be changed here: it is completed."]


# --- reminder and timeout ----------------------------------------------------------------------

def test_the_reminder_asks_again_once_and_a_tap_still_works(make, shop, now) -> None:
    app = build(make, shop, reminder_template="cod_reminder")
    place(app, shop, cod_order())
    later(app, now, 5)
    assert len(questions(app)) == 1
    later(app, now, 2)
    later(app, now, 2)
    first, reminder = questions(app)
    assert reminder["name"] == "cod_reminder" and button_payloads(reminder) == button_payloads(first)
    tap(app, "confirm")
    assert shop.status_changes == [(ORDER_ID, "processing")]


@pytest.mark.parametrize(("action", "status"), [("nothing", "pending"), ("on-hold", "on-hold"),
                                                ("cancel", "cancelled")])
def test_the_timeout_applies_its_action_notes_it_and_closes_the_question(make, shop, now, action, status) -> None:
    app = build(make, shop, timeout_action=action)
    place(app, shop, cod_order())
    later(app, now, 23)
    assert shop.status(ORDER_ID) == "pending" and shop.note_texts(ORDER_ID) == []
    later(app, now, 2)
    assert shop.status(ORDER_ID) == status
    assert shop.status_changes == ([] if action == "nothing" else [(ORDER_ID, status)])
    [note] = shop.note_texts(ORDER_ID)
    assert note.startswith("No cash-on-delivery confirmation on WhatsApp within 24 hours")
    tap(app, "confirm")  # too late
    assert shop.status(ORDER_ID) == status and len(shop.note_texts(ORDER_ID)) == 1
    assert texts(app) == [f"Order {ORDER_ID} can no longer be changed here: it is {status}."]


def test_no_reminder_for_an_order_the_shop_moved_on(make, shop, now) -> None:
    app = build(make, shop, timeout_action="cancel")
    place(app, shop, cod_order())
    shop.set_status(ORDER_ID, "processing")
    later(app, now, 30)
    assert len(questions(app)) == 1 and shop.status_changes == [] and shop.note_texts(ORDER_ID) == []


def test_a_crash_after_the_status_change_is_finished_by_the_retry(make, shop, now, monkeypatch) -> None:
    app = build(make, shop)
    place(app, shop, cod_order())
    client = app.connectors["woocommerce"].client("main")
    add_note = client.add_note
    calls = []

    def crash_once(order_id: str, text: str) -> Any:
        calls.append(text)
        if len(calls) == 1:
            raise ConnectionResetError("the worker died here")
        return add_note(order_id, text)

    monkeypatch.setattr(client, "add_note", crash_once)
    tap(app, "confirm")
    assert shop.status_changes == [(ORDER_ID, "processing")] and shop.note_texts(ORDER_ID) == []
    now.hours(1)  # the delivery's retry is due
    run(app)
    assert shop.status_changes == [(ORDER_ID, "processing")] and len(shop.note_texts(ORDER_ID)) == 1
    assert texts(app) == [f"Thank you! Order {ORDER_ID} is confirmed: we will deliver it soon."]


def test_settings_refuse_an_incomplete_section() -> None:
    from connectzap.connectors.woocommerce.settings import WooCommerceSettings
    base = shop_config()
    for bad in ({"enabled": True}, {**COD, "cancel_button": 0}, {**COD, "reminder_hours": 30}):
        with pytest.raises(ValueError, match="cod"):
            WooCommerceSettings.model_validate({"shops": {"main": {**base, "cod": bad}}})


# --- whatever happens, at most one status change -----------------------------------------------

STEPS = st.lists(st.sampled_from(["confirm", "cancel", "other", "replay", "hours", "shop"]), max_size=8)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS, action=st.sampled_from(["nothing", "on-hold", "cancel"]))
def test_any_sequence_changes_the_status_at_most_once(make, shop, steps, action) -> None:
    moved = Clock()
    with clock.use_clock(moved):
        app = build(make, shop, sub=f"h{next(_wamids)}", timeout_action=action)
        order_id = str(next(_orders))
        shop.add(cod_order(id=int(order_id), number=order_id))
        place(app, shop, cod_order(id=int(order_id), number=order_id), delivery=f"d{order_id}")
        last = None
        for step in steps:
            if step in ("confirm", "cancel", "other"):
                last = tap(app, "cancel" if step == "other" else step, wa_id=OTHER if step == "other" else CUSTOMER)
            elif step == "replay" and last is not None:
                deliver_signed(app, copy.deepcopy(last))
                run(app)
            elif step == "hours":
                later(app, moved, 13)
            elif step == "shop":
                shop.set_status(order_id, "completed")
        later(app, moved, 48)
    changes = [c for c in shop.status_changes if c[0] == order_id]
    notes = shop.note_texts(order_id)
    assert len(changes) <= 1 and len(notes) <= 1
    answered = [s for s in steps if s in ("confirm", "cancel")]
    if answered and "shop" not in steps[:steps.index(answered[0])] and "hours" not in steps[:steps.index(answered[0])]:
        assert changes == [(order_id, "processing" if answered[0] == "confirm" else "cancelled")]



def test_a_rehearsal_says_the_question_would_be_asked(make, shop) -> None:
    app = build(make, shop)
    flow = app.connectors["woocommerce"].cod
    order = app.connectors["woocommerce"].order_event("main", cod_order(), EventKind.ORDER_CREATED, "d").payload()
    [call] = flow.rehearse_ask(order)
    assert call.note == ("ask the customer to confirm cash on delivery with the template cod_confirmation "
                         "(a reminder after 6 h, the timeout after 24 h)")
    not_cod = order.model_copy(update={"payment_method": "stripe"})
    assert flow.rehearse_ask(not_cod) == [] and shop.requests == []


@pytest.mark.parametrize(("hours", "said"), [(1, "within 1 hour;"), (2, "within 2 hours;")])
def test_the_timeout_note_agrees_in_number(make, shop, now, hours, said) -> None:
    """The shop's note said "within 1 hours"."""
    app = build(make, shop, reminder_hours=0, timeout_hours=hours, timeout_action="nothing")
    place(app, shop, cod_order())
    later(app, now, hours + 0.5)
    [note] = shop.note_texts(ORDER_ID)
    assert note.startswith(f"No cash-on-delivery confirmation on WhatsApp {said} the order was left as it is")
