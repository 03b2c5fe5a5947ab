"""Several WhatsApp Business Accounts behind one service ([[connectors.whatsapp.accounts]]): each
with its own token, app secret and numbers. Inbound webhooks and statuses are routed by
``phone_number_id`` and must be signed by the secret of the account that owns what they name;
sends leave from the right number with that account's token (the Graph stand-in refuses any
other); configuration mistakes stop start-up with one line. Webhook bodies are built here in the
shape of Meta's webhook reference (as tests/payloads/whatsapp/text.json and status_delivered.json)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from connectzap import Category, ConsentChange, Outgoing, TemplateContent, TextContent
from connectzap.connectors.whatsapp.channel import AccountsChannel
from connectzap.connectors.whatsapp.settings import WhatsAppSettings
from connectzap.connectors.whatsapp.signatures import SigningAccount, sign_meta, verify_meta_accounts
from connectzap.core import clock
from connectzap.core.errors import ConfigurationError, SignatureError
from connectzap.core.store import journal
from connectzap.core.worker import Worker
from connectzap.testing import deliver, meta_headers, run, seed_template, webhook_request
from connectzap.testing.fake_graph import FakeGraph

from whatsapp_cli_support import whatsapp_cli

SHOP = {"waba": "102290129340398", "token": "EAAG-shop-token", "secret": "shop-app-secret",
        "numbers": ["106540352242922", "106540352242923"]}
OUTLET = {"waba": "204410775512001", "token": "EAAG-outlet-token", "secret": "outlet-app-secret",
          "numbers": ["117700998811001"]}
CUSTOMER = "+4915112345678"


def accounts_config(api_base_url: str = "https://graph.invalid", **extra: Any) -> dict[str, Any]:
    return {"verify_token": "verify", "api_base_url": api_base_url, "messages_per_second": 1000,
            "pair_spacing_seconds": 0, "timeout_seconds": 5, **extra,
            "accounts": [
                {"name": "shop", "waba_id": SHOP["waba"], "access_token": SHOP["token"],
                 "app_secrets": [SHOP["secret"]], "numbers": SHOP["numbers"]},
                {"name": "outlet", "waba_id": OUTLET["waba"], "access_token": OUTLET["token"],
                 "app_secrets": [OUTLET["secret"]], "numbers": OUTLET["numbers"]}]}


def envelope(waba: str, number: str, value: dict[str, Any]) -> bytes:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550783881", "phone_number_id": number}, **value}
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": waba, "changes": [{"field": "messages", "value": value}]}]}).encode()


def text_message(waba: str, number: str, wamid: str) -> bytes:
    wa_id = CUSTOMER.lstrip("+")
    return envelope(waba, number, {
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": wa_id}],
        "messages": [{"from": wa_id, "id": wamid, "timestamp": str(int(clock.now())), "type": "text",
                      "text": {"body": "Is my order on its way?"}}]})


def status(waba: str, number: str, wamid: str, outbox_id: str, value: str = "delivered") -> bytes:
    return envelope(waba, number, {"statuses": [
        {"id": wamid, "status": value, "timestamp": str(int(clock.now())), "recipient_id": CUSTOMER.lstrip("+"),
         "biz_opaque_callback_data": outbox_id}]})


def post(app: Any, body: bytes, secret: str) -> Any:
    return deliver(app, "whatsapp", webhook_request("/webhooks/whatsapp", body, headers=meta_headers(body, secret)))


def journaled(app: Any) -> int:
    with app.db.read() as conn:
        return journal.pending_count(conn)


# --- configuration ---------------------------------------------------------------------------

def test_the_single_account_configuration_is_the_one_account_case() -> None:
    single = WhatsAppSettings(access_token="EAAG-one", phone_number_id="1001", phone_number_ids=["1002"],
                              waba_id="77", app_secrets=["s"], verify_token="v")
    assert single.account_settings() == [single] and single.numbers == ["1001", "1002"]
    assert single.default_number == "1001" and single.account_view(number="1002") is single
    several = WhatsAppSettings.model_validate(accounts_config())
    views = several.account_settings()
    assert [(v.account_label, v.waba_id, v.phone_number_id, v.phone_number_ids) for v in views] == [
        ("shop", SHOP["waba"], SHOP["numbers"][0], SHOP["numbers"][1:]),
        ("outlet", OUTLET["waba"], OUTLET["numbers"][0], [])]
    assert [v.access_token.get_secret_value() for v in views if v.access_token] == [SHOP["token"], OUTLET["token"]]
    assert several.live and several.default_number == SHOP["numbers"][0]
    assert several.account_view(number=OUTLET["numbers"][0]).account_label == "outlet"
    assert several.account_view(account=OUTLET["waba"]).account_label == "outlet"
    for secret in (SHOP["token"], SHOP["secret"], OUTLET["token"], OUTLET["secret"]):
        assert secret not in repr(several) and secret not in str(several.model_dump())


def _mistake(config: dict[str, Any], account: int | None = None, **change: Any) -> dict[str, Any]:
    if account is None:
        return {**config, **change}
    accounts = [dict(a) for a in config["accounts"]]
    accounts[account].update(change)
    return {**config, "accounts": accounts}


@pytest.mark.parametrize(("config", "said"), [
    (_mistake(accounts_config(), 1, numbers=[SHOP["numbers"][1]]), f"phone number id {SHOP['numbers'][1]} appears"),
    (_mistake(accounts_config(), 1, waba_id=SHOP["waba"], name="other"), f"waba_id {SHOP['waba']} appears"),
    (_mistake(accounts_config(), 1, name="shop"), "account name shop appears"),
    (_mistake(accounts_config(), 0, numbers=["1", "1"]), "phone number id 1 appears"),
    (_mistake(accounts_config(), access_token=SHOP["token"]), "set access_token in each"),
    (_mistake(accounts_config(), waba_id=SHOP["waba"]), "set waba_id in each"),
    (_mistake(accounts_config(), phone_number_id="999"), "phone_number_id 999 is in no account"),
    (_mistake(accounts_config(), 1, app_secrets=[]), "account outlet: set its app_secrets"),
    (_mistake(accounts_config(), 0, numbers=[]), "numbers"),
    (_mistake(accounts_config(), verify_token=None), "verify_token"),
], ids=["number-twice", "waba-twice", "name-twice", "number-twice-in-one", "section-token", "section-waba",
        "unknown-default-number", "no-app-secret", "no-numbers", "no-verify-token"])
def test_mistakes_stop_start_up_with_one_line(make: Any, config: dict[str, Any], said: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make(connectors={"whatsapp": config})
    message = str(caught.value)
    assert said in message and "\n" not in message
    for secret in (SHOP["token"], SHOP["secret"], OUTLET["token"], OUTLET["secret"]):
        assert secret not in message


def test_app_secrets_of_the_section_serve_accounts_that_set_none(make: Any) -> None:
    config = _mistake(accounts_config(app_secrets=["shared-app-secret"]), 1, app_secrets=[])
    app = make(connectors={"whatsapp": config})
    body = text_message(OUTLET["waba"], OUTLET["numbers"][0], "wamid.shared.1")
    assert post(app, body, "shared-app-secret").status == 200
    assert post(app, body, SHOP["secret"]).status == 401  # the shop's app does not speak for the outlet


# --- inbound: routed by number, signed by the owner's app --------------------------------------

def test_inbound_messages_are_routed_by_number_and_open_that_numbers_window(make: Any) -> None:
    app = make(connectors={"whatsapp": accounts_config()})
    shop_number, outlet_number = SHOP["numbers"][1], OUTLET["numbers"][0]
    assert post(app, text_message(OUTLET["waba"], outlet_number, "wamid.outlet.1"), OUTLET["secret"]).status == 200
    assert post(app, text_message(SHOP["waba"], shop_number, "wamid.shop.1"), SHOP["secret"]).status == 200
    run(app)
    from connectzap.core.store.schema import windows
    with app.db.read() as conn:
        opened = sorted(conn.execute(windows.select().with_only_columns(windows.c.business_phone_number_id)).scalars())
    assert opened == sorted([shop_number, outlet_number])
    # The customer wrote to the outlet's number and the shop's second number: a free-form reply may
    # leave from either, not from the shop's first number (its window is closed).
    reply = TextContent(body="Yes, tomorrow.")
    for number, expected in ((outlet_number, "queued"), (shop_number, "queued"), (SHOP["numbers"][0], "refused")):
        decision = app.send(Outgoing(to=CUSTOMER, content=reply, business_phone_number_id=number,
                                     idempotency_key=f"reply-{number}"))
        assert decision.status == expected, (number, decision)


def test_a_webhook_signed_with_the_other_accounts_secret_is_refused(make: Any) -> None:
    app = make(connectors={"whatsapp": accounts_config()})
    for waba, number, wrong in ((OUTLET["waba"], OUTLET["numbers"][0], SHOP["secret"]),
                                (SHOP["waba"], SHOP["numbers"][0], OUTLET["secret"]),
                                # the outlet's number under the shop's account id, signed by the shop
                                (SHOP["waba"], OUTLET["numbers"][0], SHOP["secret"]),
                                # the shop's number under the outlet's account id, signed by the shop
                                (OUTLET["waba"], SHOP["numbers"][0], SHOP["secret"])):
        answer = post(app, text_message(waba, number, f"wamid.{number}.{waba}"), wrong)
        assert answer.status == 401, (waba, number)
        assert "whose app secret did not sign" in answer.body["detail"]
        assert not any(s in json.dumps(answer.body) for s in (SHOP["secret"], OUTLET["secret"]))
    unknown = post(app, text_message(SHOP["waba"], "999000111", "wamid.unknown"), SHOP["secret"])
    assert unknown.status != 200  # a number no account lists: refused by the parser
    assert journaled(app) == 0


# --- outbound: each number with its account's token; statuses routed back ----------------------

@pytest.fixture
def graph() -> Any:
    with FakeGraph(token="no-account-uses-this") as fake:
        fake.add_account(SHOP["waba"], token=SHOP["token"], numbers=SHOP["numbers"], app_secret=SHOP["secret"])
        fake.add_account(OUTLET["waba"], token=OUTLET["token"], numbers=OUTLET["numbers"],
                         app_secret=OUTLET["secret"])
        yield fake


def consented(app: Any) -> None:
    seed_template(app, "order_shipped", "Order {{1}} is on its way.")
    app.set_consent(ConsentChange(phone=CUSTOMER, category=Category.UTILITY, granted=True, source="t", proof="box"))


async def test_sends_leave_from_each_number_with_its_accounts_token_and_statuses_come_back(make: Any,
                                                                                            graph: Any) -> None:
    app = make(connectors={"whatsapp": accounts_config(graph.url)})
    assert isinstance(app.channel, AccountsChannel)
    consented(app)
    content = TemplateContent(name="order_shipped", language="en", body=["42"])
    ids = {}
    for number in (None, SHOP["numbers"][1], OUTLET["numbers"][0]):
        decision = app.send(Outgoing(to=CUSTOMER, content=content, business_phone_number_id=number,
                                     idempotency_key=f"shipped-{number}"))
        assert decision.status == "queued", decision
        ids[number or SHOP["numbers"][0]] = decision.id
    await Worker(app).run_until_idle()
    for number, outbox_id in ids.items():
        row = app.message(outbox_id)
        assert row["status"] == "accepted", (number, row)
        sent = graph.sends_from(number)
        assert [r.body["biz_opaque_callback_data"] for r in sent] == [outbox_id]
        assert "authorization" not in {k.lower() for k in sent[0].headers}  # the stand-in keeps no token
    # Statuses come back through each account's app; each settles its own message.
    for number, waba, secret in ((SHOP["numbers"][1], SHOP["waba"], SHOP["secret"]),
                                 (OUTLET["numbers"][0], OUTLET["waba"], OUTLET["secret"])):
        row = app.message(ids[number])
        assert post(app, status(waba, number, row["wamid"], ids[number]), secret).status == 200
    # ...and one signed by the wrong app changes nothing.
    first = app.message(ids[SHOP["numbers"][0]])
    forged = status(SHOP["waba"], SHOP["numbers"][0], first["wamid"], ids[SHOP["numbers"][0]], "read")
    assert post(app, forged, OUTLET["secret"]).status == 401
    await Worker(app).run_until_idle()
    await app.aclose()
    assert {n: app.message(i)["status"] for n, i in ids.items()} == {
        SHOP["numbers"][0]: "accepted", SHOP["numbers"][1]: "delivered", OUTLET["numbers"][0]: "delivered"}


async def test_a_wrong_token_for_a_number_is_refused_by_the_stand_in(make: Any, graph: Any) -> None:
    """The stand-in really checks whose token it is: with the accounts' tokens swapped, nothing is accepted."""
    config = accounts_config(graph.url)
    config["accounts"][0]["access_token"], config["accounts"][1]["access_token"] = OUTLET["token"], SHOP["token"]
    app = make(connectors={"whatsapp": config})
    consented(app)
    decision = app.send(Outgoing(to=CUSTOMER, content=TemplateContent(name="order_shipped", language="en", body=["1"]),
                                 business_phone_number_id=OUTLET["numbers"][0]))
    await Worker(app).run_until_idle()
    await app.aclose()
    assert app.message(decision.id)["status"] != "accepted"
    assert graph.accepted() == {}


async def test_a_send_naming_an_unknown_number_fails_and_nothing_is_sent(make: Any, graph: Any) -> None:
    app = make(connectors={"whatsapp": accounts_config(graph.url)})
    consented(app)
    decision = app.send(Outgoing(to=CUSTOMER, content=TemplateContent(name="order_shipped", language="en", body=["1"]),
                                 business_phone_number_id="555000111"))
    await Worker(app).run_until_idle()
    await app.aclose()
    row = app.message(decision.id)
    assert row["status"] == "failed" and "555000111 is in no account" in (row["error_details"] or row["reason"] or "")
    assert graph.sends() == []


# --- the signature rule as a property ----------------------------------------------------------

NUMBERS = [f"10{i}" for i in range(6)]


@settings(max_examples=200, deadline=None)
@given(owner_of=st.lists(st.integers(0, 2), min_size=len(NUMBERS), max_size=len(NUMBERS)),
       secrets=st.lists(st.sampled_from(["a", "b", "c"]), min_size=3, max_size=3),
       signer=st.sampled_from(["a", "b", "c", "x"]),
       named=st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=3))
def test_accepted_exactly_when_the_signer_owns_every_named_number(owner_of: list[int], secrets: list[str],
                                                                  signer: str, named: list[str]) -> None:
    accounts = [SigningAccount(f"acc{i}", f"waba{i}",
                               frozenset(n for n, o in zip(NUMBERS, owner_of, strict=True) if o == i), (secrets[i],))
                for i in range(3)]
    body = json.dumps({"object": "whatsapp_business_account", "entry": [
        {"id": "waba-unlisted", "changes": [{"field": "messages", "value": {"metadata": {"phone_number_id": n}}}]}
        for n in named]}).encode()
    trusted = {a.label for a in accounts if a.secrets[0] == signer}  # accounts whose secret signed it
    owners = {accounts[owner_of[NUMBERS.index(n)]].label for n in named}
    try:
        signed_by = verify_meta_accounts(body, sign_meta(body, signer), accounts)
    except SignatureError:
        assert not trusted or not owners <= trusted
    else:
        assert signed_by == trusted and owners <= trusted


# --- commands: per account, per number -------------------------------------------------------

def accounts_toml() -> str:
    """Both accounts as ``[[connectors.whatsapp.accounts]]`` tables."""
    return "".join(f"""
[[connectors.whatsapp.accounts]]
name = "{name}"
waba_id = "{a['waba']}"
access_token = "{a['token']}"
app_secrets = ["{a['secret']}"]
numbers = {json.dumps(a['numbers'])}
""" for name, a in (("shop", SHOP), ("outlet", OUTLET)))


@pytest.fixture
def cli_run(tmp_path: Any, graph: Any) -> Any:
    accounts = accounts_toml()
    return whatsapp_cli(tmp_path, f'verify_token = "verify"\napi_base_url = "{graph.url}"\n{accounts}')


def template(name: str, language: str = "en") -> dict[str, Any]:
    return {"id": f"{name}-{language}", "name": name, "language": language, "status": "APPROVED",
            "category": "UTILITY", "parameter_format": "POSITIONAL",
            "components": [{"type": "BODY", "text": "Order {{1}} is on its way."}]}


def test_templates_sync_each_account_with_its_token_and_keep_their_waba(cli_run: Any, graph: Any) -> None:
    graph.owner(SHOP["waba"]).templates.append(template("shop_shipped"))
    graph.owner(OUTLET["waba"]).templates.append(template("outlet_shipped"))
    result = cli_run("templates", "sync")
    assert result.exit_code == 0, result.output
    assert "synced 1 template from business account shop" in result.output
    assert "synced 1 template from business account outlet" in result.output
    listed = json.loads(cli_run("templates", "list", "--json").output)
    assert {(t["name"], t["waba_id"]) for t in listed} == {("shop_shipped", SHOP["waba"]),
                                                          ("outlet_shipped", OUTLET["waba"])}
    # The outlet's template goes from the outlet's account; the shop's stays cached.
    graph.owner(OUTLET["waba"]).templates.clear()
    again = cli_run("templates", "sync", "--account", "outlet")
    assert again.exit_code == 0 and "removed 1" in again.output, again.output
    assert [t["name"] for t in json.loads(cli_run("templates", "list", "--json").output)] == ["shop_shipped"]
    assert cli_run("templates", "delete", "shop_shipped", "--yes").exit_code != 0  # which account? it must be said
    deleted = cli_run("templates", "delete", "shop_shipped", "--yes", "--account", SHOP["waba"])
    assert deleted.exit_code == 0, deleted.output
    assert graph.owner(SHOP["waba"]).templates == []


def test_limits_per_account_and_number(cli_run: Any, graph: Any) -> None:
    graph.messaging_limit = "TIER_2K"
    both = cli_run("whatsapp", "limits", "--json")
    assert both.exit_code == 0, both.output
    shown = json.loads(both.output)
    assert [(s["account"], s["phone_number_id"], s["daily_unique_recipients"]) for s in shown] == [
        ("shop", SHOP["numbers"][0], "2000"), ("outlet", OUTLET["numbers"][0], "2000")]
    graph.messaging_limit = "TIER_10K"
    one = json.loads(cli_run("whatsapp", "limits", "--number", SHOP["numbers"][1], "--json").output)
    assert (one["account"], one["phone_number_id"], one["daily_unique_recipients"]) == (
        "shop", SHOP["numbers"][1], "10000")
    kept = json.loads(cli_run("whatsapp", "limits", "--account", "outlet", "--no-refresh", "--json").output)
    assert kept["daily_unique_recipients"] == "2000"  # each account keeps its own budget
    asked = [r.path.rsplit("/", 1)[1] for r in graph.requests if r.method == "GET"]
    assert asked == [SHOP["numbers"][0], OUTLET["numbers"][0], SHOP["numbers"][1]]
    unknown = cli_run("whatsapp", "limits", "--account", "nobody")
    assert unknown.exit_code != 0 and "no account 'nobody'" in unknown.output


def test_webhook_overrides_go_with_the_numbers_account_token(cli_run: Any, graph: Any) -> None:
    url = "https://outlet.example/webhooks/whatsapp"
    result = cli_run("whatsapp", "webhook", "set", url, "--number", OUTLET["numbers"][0], input="outlet-verify\n")
    assert result.exit_code == 0, result.output  # the stand-in refuses any token but the outlet's
    assert graph.number_overrides[OUTLET["numbers"][0]]["override_callback_uri"] == url
    whole = cli_run("whatsapp", "webhook", "set", "https://shop.example/wh", "--whole-account", "--account", "shop",
                    input="shop-verify\n")
    assert whole.exit_code == 0, whole.output
    assert list(graph.waba_overrides) == [SHOP["waba"]]
    assert cli_run("whatsapp", "webhook", "set", url, "--whole-account", input="x\n").exit_code != 0
    shown = json.loads(cli_run("whatsapp", "webhook", "show", "--number", SHOP["numbers"][1], "--json").output)
    assert shown["whatsapp_business_account"] == "https://shop.example/wh" and shown["in_use"] == \
        "whatsapp_business_account"
    outlet = json.loads(cli_run("whatsapp", "webhook", "show", "--number", OUTLET["numbers"][0], "--json").output)
    assert (outlet["phone_number"], outlet["whatsapp_business_account"]) == (url, None)


def test_doctor_lists_each_account_without_secrets(cli_run: Any) -> None:
    result = cli_run("doctor")
    assert f"whatsapp account shop (waba {SHOP['waba']}): numbers {SHOP['numbers'][0]} (default), " \
           f"{SHOP['numbers'][1]}" in result.output
    assert f"whatsapp account outlet (waba {OUTLET['waba']}): number {OUTLET['numbers'][0]}\n" in result.output
    for secret in (SHOP["token"], SHOP["secret"], OUTLET["token"], OUTLET["secret"]):
        assert secret not in result.output


async def test_the_display_number_is_read_with_the_numbers_account_token(make: Any, graph: Any) -> None:
    app = make(connectors={"whatsapp": accounts_config(graph.url)})
    connector = app.connectors["whatsapp"]
    assert await connector.display_number(OUTLET["numbers"][0]) == "+15550783881"  # E.164 of the stand-in's
    assert await connector.display_number() == "+15550783881"  # the default number, the shop's
    asked = [r.path.rsplit("/", 1)[1] for r in graph.requests if r.method == "GET"]
    assert asked == [OUTLET["numbers"][0], SHOP["numbers"][0]]  # the stand-in answered each to its own token
    await app.aclose()


def test_a_template_name_used_by_two_accounts_is_kept_for_each_at_sync(cli_run: Any, graph: Any, caplog: Any) -> None:
    graph.owner(SHOP["waba"]).templates.append(template("order_shipped"))
    graph.owner(OUTLET["waba"]).templates.append({**template("order_shipped"), "category": "MARKETING"})
    graph.owner(OUTLET["waba"]).templates.append(template("outlet_only"))
    with caplog.at_level("WARNING"):
        assert cli_run("templates", "sync").exit_code == 0
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []
    cached = json.loads(cli_run("templates", "list", "--json").output)
    listed = {(t["name"], t["waba_id"], t["category"]) for t in cached}
    assert listed == {("order_shipped", SHOP["waba"], "UTILITY"), ("order_shipped", OUTLET["waba"], "MARKETING"),
                      ("outlet_only", OUTLET["waba"], "UTILITY")}
    # A sync of one account replaces only its own templates.
    graph.owner(OUTLET["waba"]).templates.clear()
    assert "removed 2" in cli_run("templates", "sync", "--account", "outlet").output
    assert [(t["name"], t["waba_id"]) for t in json.loads(cli_run("templates", "list", "--json").output)] == [
        ("order_shipped", SHOP["waba"])]


# --- templates per account: each number sends its own account's --------------------------------

def two_accounts_templates(app: Any) -> None:
    """``order_shipped`` (en) in both accounts, different text and category; ``outlet_only`` in the outlet's."""
    seed_template(app, "order_shipped", "Order {{1}} is on its way.", waba_id=SHOP["waba"])
    seed_template(app, "order_shipped", "{{1}}: 20% off your next order, code {{2}}.", category="MARKETING",
                  waba_id=OUTLET["waba"])
    seed_template(app, "outlet_only", "Order {{1}} is ready for pickup.", waba_id=OUTLET["waba"])
    app.set_consent(ConsentChange(phone=CUSTOMER, category=Category.UTILITY, granted=True, source="t", proof="box"))


async def test_each_number_sends_the_template_of_its_own_account(make: Any, graph: Any) -> None:
    app = make(connectors={"whatsapp": accounts_config(graph.url)})
    two_accounts_templates(app)

    def send(number: str | None, name: str, *body: str) -> Any:
        return app.send(Outgoing(to=CUSTOMER, content=TemplateContent(name=name, language="en", body=list(body)),
                                 business_phone_number_id=number))

    shop_default, shop_other = (send(n, "order_shipped", "42") for n in (None, SHOP["numbers"][1]))
    assert (shop_default.status, shop_other.status) == ("queued", "queued")
    outlet = OUTLET["numbers"][0]
    # The outlet's order_shipped takes two parameters and is MARKETING: the shop's does not stand in for it.
    assert send(outlet, "order_shipped", "42").reason == "param_mismatch"
    assert send(outlet, "order_shipped", "Sheena", "SAVE20").reason == "no_consent"
    app.set_consent(ConsentChange(phone=CUSTOMER, category=Category.MARKETING, granted=True, source="t", proof="box"))
    offer = send(outlet, "order_shipped", "Sheena", "SAVE20")
    assert offer.status == "queued"
    # A template only the outlet has, sent from a shop number: refused before it is queued, both accounts named.
    for number in (None, SHOP["numbers"][1]):
        refused = send(number, "outlet_only", "42")
        assert (refused.status, refused.reason) == ("refused", "template_not_in_account")
        assert OUTLET["waba"] in (refused.detail or "") and SHOP["waba"] in (refused.detail or "")
    assert send(outlet, "outlet_only", "42").status == "queued"
    await Worker(app).run_until_idle()
    await app.aclose()
    sent = sorted((number, r.body["template"]["name"], len(r.body["template"]["components"][0]["parameters"]))
                  for number in (*SHOP["numbers"], outlet) for r in graph.sends_from(number))
    assert sent == sorted([(SHOP["numbers"][0], "order_shipped", 1), (SHOP["numbers"][1], "order_shipped", 1),
                           (outlet, "order_shipped", 2), (outlet, "outlet_only", 1)])
    assert len(graph.sends()) == 4


async def test_the_rest_api_and_the_sender_check_the_numbers_account_too(make: Any, graph: Any) -> None:
    """REST admission refuses another account's template; a queued message whose account's template
    went (a later sync) is refused at the sender's re-check, though the other account still has it."""
    from server_support import AUTH, SETTINGS, serving

    from connectzap.core import templates

    app = make(api=SETTINGS["api"], connectors={"whatsapp": accounts_config(graph.url)})
    two_accounts_templates(app)
    message = {"to": CUSTOMER, "content": {"type": "template", "name": "outlet_only", "language": "en",
                                           "body": ["42"]}}
    async with serving(app) as client:
        from_shop = (await client.post("/v1/messages", headers=AUTH, json=message)).json()
        queued = (await client.post("/v1/messages", headers=AUTH,
                                    json={**message, "business_phone_number_id": OUTLET["numbers"][0]})).json()
        shipped = (await client.post("/v1/messages", headers=AUTH, json={
            "to": CUSTOMER, "business_phone_number_id": SHOP["numbers"][1],
            "content": {"type": "template", "name": "order_shipped", "language": "en", "body": ["42"]}})).json()
    assert from_shop["error"] == "template_not_in_account" and OUTLET["waba"] in from_shop["detail"], from_shop
    assert queued["status"] == shipped["status"] == "queued"
    with app.db.begin() as conn:  # the shop's order_shipped is gone from its account; the outlet's stays
        assert templates.delete(conn, "order_shipped", "en", SHOP["waba"]) == 1
    await Worker(app).run_until_idle()
    await app.aclose()
    assert app.message(queued["id"])["status"] == "accepted"
    row = app.message(shipped["id"])
    assert (row["status"], row["reason"]) == ("refused", "template_not_in_account")
    assert graph.sends_from(SHOP["numbers"][1]) == [] and len(graph.sends_from(OUTLET["numbers"][0])) == 1


def test_a_campaign_previews_and_admits_with_its_numbers_account(make: Any) -> None:
    import io

    from connectzap.core.campaigns.audience import read_file

    app = make(connectors={"whatsapp": accounts_config()})
    two_accounts_templates(app)
    outcomes, made_from = {}, {}
    for number in (SHOP["numbers"][1], OUTLET["numbers"][0]):
        made = app.campaigns.create(f"pickup from {number}", {"name": "outlet_only", "language": "en"},
                                    business_phone_number_id=number)
        assert app.campaigns.load_audience(made.id, read_file(io.StringIO(f"phone,1\n{CUSTOMER},42\n"), "csv",
                                                              app.secret)).added == 1
        preview = app.campaigns.preview(made.id)
        outcomes[number], made_from[number] = (preview.reachable, preview.refused), made.id
        app.campaigns.start(made.id)
    assert outcomes == {SHOP["numbers"][1]: (0, {"template_not_in_account": 1}), OUTLET["numbers"][0]: (1, {})}
    app.campaigns.run_once()
    reasons = {number: [r["reason"] for r in app.campaigns.results(campaign_id)]
               for number, campaign_id in made_from.items()}
    assert reasons == {SHOP["numbers"][1]: ["template_not_in_account"], OUTLET["numbers"][0]: [None]}


async def test_a_template_webhook_changes_only_its_accounts_template(make: Any, graph: Any) -> None:
    from connectzap.core import templates

    app = make(connectors={"whatsapp": accounts_config(graph.url)})
    two_accounts_templates(app)
    body = {"object": "whatsapp_business_account", "entry": [{"id": OUTLET["waba"], "time": 1751247548, "changes": [
        {"field": "message_template_status_update",
         "value": {"event": "PAUSED", "message_template_id": 1689556908129835, "message_template_name": "order_shipped",
                   "message_template_language": "en", "reason": "LOW_QUALITY"}},
        {"field": "template_category_update",
         "value": {"message_template_id": 1689556908129835, "message_template_name": "order_shipped",
                   "message_template_language": "en", "previous_category": "MARKETING",
                   "new_category": "UTILITY"}}]}]}
    assert post(app, json.dumps(body).encode(), OUTLET["secret"]).status == 200
    await Worker(app).run_until_idle()
    with app.db.read() as conn:
        shop = templates.get(conn, "order_shipped", "en", SHOP["waba"])
        outlet = templates.get(conn, "order_shipped", "en", OUTLET["waba"])
    await app.aclose()
    assert shop is not None and (shop.status, shop.category, shop.waba_id) == ("APPROVED", "UTILITY", SHOP["waba"])
    assert outlet is not None and (outlet.status, outlet.category) == ("PAUSED", "UTILITY")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(owned=st.dictionaries(st.tuples(st.sampled_from(["order_shipped", "order_ready"]), st.sampled_from(["en", "de"]),
                                       st.sampled_from([SHOP["waba"], OUTLET["waba"]])),
                             st.sampled_from(["APPROVED", "REJECTED", "PAUSED"]), max_size=8),
       name=st.sampled_from(["order_shipped", "order_ready"]), language=st.sampled_from(["en", "de"]),
       number=st.sampled_from([None, *SHOP["numbers"], *OUTLET["numbers"]]))
def test_a_template_passes_the_gate_exactly_when_the_numbers_account_has_it_approved(
        accounts_app: Any, owned: dict[tuple[str, str, str], str], name: str, language: str,
        number: str | None) -> None:
    from connectzap.core import gate
    from connectzap.core.store.schema import templates as cache

    with accounts_app.db.begin() as conn:
        conn.execute(cache.delete())
    for (n, lang, waba), state in owned.items():
        seed_template(accounts_app, n, "Order {{1}} is on its way.", language=lang, status=state, waba_id=waba)
    waba = OUTLET["waba"] if number in OUTLET["numbers"] else SHOP["waba"]
    with accounts_app.db.read() as conn:
        facts = gate.BatchFacts(conn, set(), {name}, accounts=accounts_app.business_accounts)
        verdict = gate.check_template(facts, TemplateContent(name=name, language=language, body=["42"]), number)
    assert (verdict.reason is None) == (owned.get((name, language, waba)) in ("APPROVED", "PAUSED"))
    others = {w for (n, lang, w) in owned if (n, lang) == (name, language)} - {waba}
    if (name, language, waba) not in owned and others:
        assert verdict.reason == "template_not_in_account"


@pytest.fixture
def accounts_app(make: Any) -> Any:
    return make(connectors={"whatsapp": accounts_config()})


def test_one_account_sends_any_cached_template_as_before(make: Any) -> None:
    """One account (no accounts list): a template synced under its WABA, or of none, goes from every number."""
    app = make(connectors={"whatsapp": {"access_token": "EAAG-one", "phone_number_id": "1001",
                                        "phone_number_ids": ["1002"], "waba_id": "77", "app_secrets": ["s"],
                                        "verify_token": "v"}})
    assert app.business_accounts is None
    seed_template(app, "order_shipped", "Order {{1}} is on its way.", waba_id="77")
    seed_template(app, "order_ready", "Order {{1}} is ready.")
    app.set_consent(ConsentChange(phone=CUSTOMER, category=Category.UTILITY, granted=True, source="t", proof="box"))
    for name in ("order_shipped", "order_ready"):
        for number in (None, "1002"):
            decision = app.send(Outgoing(to=CUSTOMER, business_phone_number_id=number,
                                         content=TemplateContent(name=name, language="en", body=["42"])))
            assert decision.status == "queued", decision


def test_a_simulation_shows_the_request_leaving_from_the_messages_number(make: Any) -> None:
    from connectzap.cli.simulate import _cloud_api_url
    app = make(connectors={"whatsapp": accounts_config("https://graph.example")})
    body = {"type": "template"}
    assert _cloud_api_url(app, body, "utility", OUTLET["numbers"][0]) == \
        f"https://graph.example/v27.0/{OUTLET['numbers'][0]}/messages"
    assert _cloud_api_url(app, body, "utility") == f"https://graph.example/v27.0/{SHOP['numbers'][0]}/messages"


def test_the_start_up_check_wants_each_template_in_the_account_of_the_number_that_sends_it(make: Any) -> None:
    """`doctor` / `serve` start (app.config_problems): a template a section sends from the default number
    must be in the default number's account (or of no particular account); one sent in reply, from the
    number the customer wrote to, in every account. Another account's template of that name does not do."""
    lead = {"template": "welcome_lead", "language": "en"}
    faq = {"rules": [{"name": "hours", "keywords": ["horario"], "answer": {
        "en": {"type": "template", "name": "opening_hours", "language": "en"}}}], "default_language": "en"}
    app = make(connectors={"whatsapp": accounts_config()}, plugins={"lead_welcome": lead, "auto_replies": faq})
    assert app.business_accounts is not None and app.business_accounts.default == SHOP["waba"]
    seed_template(app, "welcome_lead", "Hi {{1}}!", waba_id=OUTLET["waba"])     # not the default number's account
    seed_template(app, "opening_hours", "We open at 9.", waba_id=SHOP["waba"])  # the outlet's numbers lack it
    problems = app.config_problems()
    assert len(problems) == 2, problems
    assert "plugins.lead_welcome.template: template 'welcome_lead' is not in the templates of business account " \
           f"{SHOP['waba']}" in problems[1]
    assert "plugins.auto_replies.rules[0].answer.en: template 'opening_hours' is not in the templates of business " \
           f"account {OUTLET['waba']}" in problems[0]
    seed_template(app, "welcome_lead", "Hi {{1}}!", waba_id=SHOP["waba"])
    seed_template(app, "opening_hours", "We open at 9.", waba_id=OUTLET["waba"])
    assert app.config_problems() == []
    with app.db.begin() as conn:  # a template of no particular account serves every number
        conn.exec_driver_sql("DELETE FROM templates WHERE name = 'opening_hours'")
    seed_template(app, "opening_hours", "We open at 9.")
    assert app.config_problems() == []
