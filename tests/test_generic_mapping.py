"""JMESPath mappings: payload -> typed events; a payload that does not fit is a 422 naming the field."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from generic_support import example_body, example_config, journal_kinds, journaled, post
from hypothesis import given, settings
from hypothesis import strategies as st

from connectzap.cli import cli
from connectzap.connectors.generic.mapping import MappedSource
from connectzap.connectors.generic.settings import GenericSettings, parse_offset
from connectzap.core.hooks import register_commands
from connectzap.core.errors import ConfigurationError, PayloadError
from connectzap.core.models import Category, Event, Order
from connectzap.core.store.schema import events
from connectzap.core.worker import Worker
from connectzap.testing import hmac_headers, shared_secret_headers

SHOP_SECRET = "shop-signing-secret-change-me"


def shop_headers(body: bytes) -> dict[str, str]:
    return hmac_headers(body, SHOP_SECRET, header="x-shop-signature", prefix="sha256=")


def without(data: dict, dotted: str) -> dict:
    copy = json.loads(json.dumps(data))
    *parents, leaf = dotted.split(".")
    node = copy
    for part in parents:
        node = node[part]
    del node[leaf]
    return copy


async def test_order_maps_to_order_with_consent(make):
    app = make(connectors=example_config("shop-order"))
    body = example_body("shop-order")
    assert post(app, "shop", body, shop_headers(body)).body == {"received": 1, "duplicates": 0}
    assert post(app, "shop", body, shop_headers(body)).body == {"received": 0, "duplicates": 1}
    with app.db.read() as conn:
        event = Event.model_validate_json(conn.execute(select(events.c.payload)).scalar_one())
    order = event.payload()
    assert isinstance(order, Order) and (order.id, order.status, order.number) == ("50123", "paid", "SO-1042")
    assert order.customer.phone == "+4915112345678" and order.customer.name == "Ana Souza"
    assert order.total == Decimal("59.90") and [i.quantity for i in order.items] == [2, 1]
    assert event.dedupe_key == "dlv_8f2c41" and event.source == "generic:shop"
    await Worker(app).run_until_idle()
    record = app.consent("+4915112345678")[Category.UTILITY]
    assert record.granted and record.source == "checkout" and record.proof == "Send me order updates on WhatsApp"


async def test_order_update_carries_previous_status_and_optional_field(make):
    app = make(connectors=example_config("shop-order"))
    data = json.loads(example_body("shop-order-shipped"))
    events = MappedSource("shop", GenericSettings.model_validate(example_config("shop-order")["generic"])
                          .sources["shop"]).events(data, body=b"")
    assert [e.kind.value for e in events] == ["order_updated"] and events[0].previous_status == "paid"
    assert events[0].payload().tracking_url == "https://track.example.com/SO-1042"
    untracked = json.dumps(without(data, "order.shipping")).encode()
    assert post(app, "shop", untracked, shop_headers(untracked)).status == 200  # tracking_url is optional


@pytest.mark.parametrize("field", ["order.id", "order.status", "order.number", "order.customer.phone",
                                   "order.billing_address.country_code", "delivery_id"])
def test_missing_required_field_is_422_naming_it_and_nothing_journaled(make, field):
    app = make(connectors=example_config("shop-order"))
    body = json.dumps(without(json.loads(example_body("shop-order")), field)).encode()
    response = post(app, "shop", body, shop_headers(body))
    assert response.status == 422, response.body
    assert response.body["field"] == field and field in response.body["detail"]
    assert journaled(app) == 0


@pytest.mark.parametrize(("body", "field", "code"), [
    (b"not json", None, "bad_body"),
    (json.dumps({"topic": "order.refunded"}).encode(), "when", "no_mapping"),
])
def test_unparseable_or_unmatched_is_422(make, body, field, code):
    app = make(connectors=example_config("shop-order"))
    response = post(app, "shop", body, shop_headers(body))
    assert response.status == 422 and response.body["error"] == code and response.body.get("field") == field
    assert journaled(app) == 0


def test_invalid_phone_is_422_naming_the_phone_field(make):
    app = make(connectors=example_config("form-lead"))
    data = json.loads(example_body("form-lead"))
    data["answers"]["phone"] = "12"
    body = json.dumps(data).encode()
    response = post(app, "contact-form", body, shared_secret_headers("form-token-new", header="x-form-token"))
    assert response.status == 422 and response.body["field"] == "answers.phone"
    assert journaled(app) == 0


def test_unmatched_ignore_acknowledges_without_journaling(make):
    config = example_config("shop-order")
    config["generic"]["sources"]["shop"]["unmatched"] = "ignore"
    app = make(connectors=config)
    body = json.dumps({"topic": "order.refunded"}).encode()
    assert post(app, "shop", body, shop_headers(body)).body == {"received": 0, "duplicates": 0}
    assert journaled(app) == 0


async def test_form_post_and_false_checkbox_records_no_consent(make):
    config = example_config("form-lead")
    source = config["generic"]["sources"]["contact-form"]
    source["mappings"][0] |= {"phone": "phone", "country": {"expr": "country", "required": False},
                              "fields": {"id": "submission_id", "contact.name": "name", "properties.form": "'demo'"}}
    source["mappings"][0]["consents"][0] |= {"granted": "offers || null", "proof": "'box on the demo form'"}
    app = make(connectors=config)
    headers = shared_secret_headers("form-token-old", header="x-form-token")
    ticked = b"submission_id=s1&name=Jo&phone=%2B447911123456&offers=on"
    unticked = b"submission_id=s2&name=Al&phone=%2B447911123457&offers="
    for body in (ticked, unticked):
        assert post(app, "contact-form", body, headers, content_type="application/x-www-form-urlencoded").status == 200
    await Worker(app).run_until_idle()
    assert journal_kinds(app)[:2] == ["lead", "lead"]
    assert app.consent("+447911123456")[Category.MARKETING].granted
    assert app.consent("+447911123457") == {}


@pytest.mark.parametrize(("mapping", "named"), [
    ({"kind": "lead", "phone": "p", "fields": {"id": "a..b"}}, "a..b"),
    ({"kind": "send", "phone": "p", "template": "t", "send_at": {"field": "s", "offset": "tomorrow"}}, "tomorrow"),
    ({"kind": "send", "phone": "p"}, "template"),
    ({"kind": "cancel"}, "cancel_key"),
])
def test_bad_mapping_config_stops_start_up_naming_it(make, mapping, named):
    config = {"generic": {"sources": {"s": {"auth": {"scheme": "standard", "secrets": ["k" * 20]},
                                            "mappings": [mapping]}}}}
    with pytest.raises(ConfigurationError) as caught:
        make(connectors=config)
    assert named in str(caught.value) and "connectors.generic.sources.s" in str(caught.value)


# --- invariants ----------------------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=12)
ALL_SOURCES = {name: spec for example in ("shop-order", "form-lead", "appointments")
               for name, spec in GenericSettings.model_validate(example_config(example)["generic"]).sources.items()}


@settings(max_examples=150, deadline=None)
@given(payload=JSON, noise=st.dictionaries(st.sampled_from(["topic", "type", "order", "data", "answers"]), JSON))
def test_any_payload_maps_or_names_a_field(payload, noise):
    """Whatever arrives, a source gives events or a PayloadError (a 422) -- never another exception."""
    shaped = {**payload, **noise} if isinstance(payload, dict) else payload
    for name, spec in ALL_SOURCES.items():
        try:
            events = MappedSource(name, spec).events(shaped, body=b"x", webhook_id="msg_1")
        except PayloadError as exc:
            assert exc.message
            continue
        for event in events:
            event.payload()


@given(sign=st.sampled_from(["", "+", "-"]), parts=st.lists(st.tuples(st.integers(0, 500),
                                                                        st.sampled_from("wdhms")), min_size=1))
def test_offsets_parse_to_their_sum(sign, parts):
    seconds = sum(n * {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    text = sign + "".join(f"{n}{u}" for n, u in parts)
    assert parse_offset(text) == timedelta(seconds=-seconds if sign == "-" else seconds)


# --- connectzap webhook test -----------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _plugin_commands() -> None:
    register_commands(cli)  # what `connectzap` (cli.main) does before parsing arguments


def _config_file(tmp_path: Path, example: str) -> str:
    path = tmp_path / "connectzap.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n'
                    + (Path(__file__).parent / "payloads" / "generic" / f"{example}.toml").read_text())
    return str(path)


def test_cli_webhook_test_shows_events(tmp_path):
    payload = tmp_path / "order.json"
    payload.write_bytes(example_body("shop-order"))
    result = CliRunner().invoke(cli, ["--config", _config_file(tmp_path, "shop-order"), "webhook", "test", "shop",
                                      str(payload)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert [e["kind"] for e in shown] == ["order_created"]
    assert shown[0]["data"]["customer"]["phone"] == "+4915112345678" and shown[0]["consents"][0]["granted"]


def test_cli_webhook_test_names_the_missing_field(tmp_path):
    payload = tmp_path / "order.json"
    payload.write_text(json.dumps(without(json.loads(example_body("shop-order")), "order.status")))
    result = CliRunner().invoke(cli, ["--config", _config_file(tmp_path, "shop-order"), "webhook", "test", "shop",
                                      str(payload)])
    assert result.exit_code == 1
    assert json.loads(result.output) | {"detail": None} == {"status": 422, "error": "missing_field",
                                                             "detail": None, "field": "order.status"}


def test_cli_webhook_test_unknown_source(tmp_path):
    payload = tmp_path / "x.json"
    payload.write_text("{}")
    result = CliRunner().invoke(cli, ["--config", _config_file(tmp_path, "shop-order"), "webhook", "test", "nope",
                                      str(payload)])
    assert result.exit_code != 0 and "no source 'nope'" in result.output and "shop" in result.output


def test_odd_value_types_are_422_not_500(make):
    config = {"generic": {"sources": {"s": {"auth": {"scheme": "shared_secret", "secrets": ["t" * 20]}, "mappings": [
        {"kind": "order_created", "phone": "p", "fields": {"id": "id", "status": "s", "customer.country": "c",
                                                           "total": "t"}}]}}}}
    app = make(connectors=config)
    for odd in ({"c": 4.5}, {"t": {"a": 1}}, {"t": "NaN-ish"}):
        body = json.dumps({"id": 1, "s": "paid", "p": "+4915112345678", "c": "DE", "t": "1.00", **odd}).encode()
        response = post(app, "s", body, {"x-webhook-secret": "t" * 20})
        assert response.status == 422, (odd, response.body)
    assert journaled(app) == 0
