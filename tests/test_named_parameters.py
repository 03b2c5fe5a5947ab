"""Named template parameters (``parameter_format: NAMED``) wherever a template can be sent -- a plugin's
proposal, the REST API and the CLI -- checked against the cached template before anything reaches
the channel: a missing or unknown name is refused with the names, and no request is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server_support import AUTH, api_engine, serving
from test_cli import PHONE, config, ok, one_line_error, run  # noqa: F401 (config: the fixture)

from connectzap import Category, ConsentChange, Outgoing, TemplateContent
from connectzap.connectors.whatsapp.payloads import template_object
from connectzap.core.worker import Worker
from connectzap.testing import FakeWhatsApp, seed_template

BODY = "Hi {{first_name}}, order {{order_number}} has shipped."
HEADER = {"type": "HEADER", "format": "TEXT", "text": "Order {{order_number}}"}


def named_template(app: Any) -> None:
    seed_template(app, "shipped_named", BODY, parameter_format="NAMED", extra_components=[HEADER])
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="t", proof="box"))


def content(body: Any, header: Any = None) -> TemplateContent:
    header = header if header is not None else {"type": "text", "text": "42", "parameter_name": "order_number"}
    return TemplateContent(name="shipped_named", language="en", body=body, header=header)


async def test_plugin_proposal_goes_out_with_parameter_names(make):
    app = make(channel=FakeWhatsApp())
    named_template(app)
    decision = app.send(Outgoing(to=PHONE, content=content({"first_name": "Ana", "order_number": "42"})))
    assert decision.status == "queued"
    await Worker(app).run_until_idle()
    [sent] = app.channel.sent()
    header, body = sent["template"]["components"]
    assert header == {"type": "header",
                      "parameters": [{"type": "text", "text": "42", "parameter_name": "order_number"}]}
    assert body["parameters"] == [{"type": "text", "text": "Ana", "parameter_name": "first_name"},
                                  {"type": "text", "text": "42", "parameter_name": "order_number"}]


async def test_missing_unknown_or_positional_parameters_are_refused_before_any_request(make):
    app = make(channel=FakeWhatsApp())
    named_template(app)
    missing = app.send(Outgoing(to=PHONE, content=content({"first_name": "Ana"})))
    unknown = app.send(Outgoing(to=PHONE, content=content({"first_name": "Ana", "order_number": "42",
                                                           "coupon": "SAVE10"})))
    positional = app.send(Outgoing(to=PHONE, content=content(["Ana", "42"])))
    header = app.send(Outgoing(to=PHONE, content=content({"first_name": "Ana", "order_number": "42"},
                                                         {"type": "text", "text": "42", "parameter_name": "order"})))
    assert [d.reason for d in (missing, unknown, positional, header)] == ["param_mismatch"] * 4
    assert missing.detail == "body parameters differ: missing ['order_number'], unexpected []"
    assert unknown.detail == "body parameters differ: missing [], unexpected ['coupon']"
    assert "named parameters" in positional.detail and "order_number" in header.detail
    await Worker(app).run_until_idle()
    assert app.channel.attempts == []


async def test_rest_api_sends_named_parameters_and_refuses_a_missing_one(make):
    engine = api_engine(make, channel=FakeWhatsApp())
    named_template(engine)
    message = {"to": PHONE, "content": {"type": "template", "name": "shipped_named", "language": "en",
                                        "header": {"type": "text", "text": "42", "parameter_name": "order_number"},
                                        "body": {"first_name": "Ana", "order_number": "42"}}}
    async with serving(engine) as client:
        accepted = await client.post("/v1/messages", json=message, headers=AUTH)
        message["content"]["body"] = {"first_name": "Ana"}
        refused = await client.post("/v1/messages", json=message, headers=AUTH)
    assert accepted.status_code in (200, 201, 202), accepted.text
    assert refused.status_code == 422 and refused.json()["error"] == "param_mismatch"
    assert "missing ['order_number']" in refused.json()["detail"]
    await Worker(engine).run_until_idle()
    assert [b["template"]["name"] for b in engine.channel.sent()] == ["shipped_named"]


def test_cli_named_parameters(config: Path) -> None:  # noqa: F811 (test_cli's fixture, imported above)
    from connectzap import Connectzap, load_settings
    app = Connectzap(load_settings(config)).start()
    seed_template(app, "welcome_named", "Hi {{first_name}}, welcome!", parameter_format="NAMED")
    app.close()
    ok(run(config, "consent", "grant", PHONE, "utility", "--proof", "checkbox"))
    out = ok(run(config, "send", PHONE, "--template", "welcome_named", "--named", "first_name=Ana"))
    assert out.split()[1] == "delivered"
    wrong = run(config, "send", PHONE, "--template", "welcome_named", "--named", "name=Ana")
    assert one_line_error(wrong, 3) == ("error: refused: param_mismatch: body parameters differ: missing "
                                        "['first_name'], unexpected ['name']")


def test_payload_keeps_names_for_every_parameter_type():
    body = template_object(TemplateContent(name="t", language="en", body={
        "total": {"type": "currency", "amount_1000": 12500, "code": "EUR", "fallback_value": "12.50 EUR"},
        "first_name": "Ana"}))["components"][0]["parameters"]
    assert [p["parameter_name"] for p in body] == ["total", "first_name"]
    assert body[0]["type"] == "currency"


def test_a_wrong_count_of_positional_parameters_is_said_in_words():
    from connectzap.core.templates import TemplateInfo, check_params

    def expected(text: str, given: list[str]) -> str | None:
        info = TemplateInfo(name="t", language="en", components=[{"type": "BODY", "text": text}])
        return check_params(info, TemplateContent(name="t", language="en", body=given))

    assert expected("Hi {{1}}.", ["a", "b"]) == "body expects 1 parameter, got 2"
    assert expected("Hi {{1}}, order {{2}}.", ["a"]) == "body expects 2 parameters, got 1"
