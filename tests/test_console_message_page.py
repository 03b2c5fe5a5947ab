"""A message's page in the console (issue #19): a failed message's timeline stops at ``failed`` with
Meta's error code and detail; no page shows a message's text -- neither while the engine keeps it
nor once it has erased it -- or the full number; what is erased says so."""

from __future__ import annotations

import re

from console_support import PASSWORD, USER, log_in
from test_console_routes import console, digits

from connectzap import Category, ConsentChange, Outgoing, TemplateContent
from connectzap.console.passwords import hash_password
from connectzap.core.errors import FatalDeliveryError
from connectzap.core.worker import Worker
from connectzap.testing import FakeWhatsApp, seed_template

PHONE = "+4915112345678"
SECRET = "Zanzibar-7731"  # a word of the message's text


def fact(page: str, name: str) -> str:
    found = re.search(rf"<dt>{name}</dt><dd[^>]*>(.*?)</dd>", page, flags=re.S)
    assert found, name
    return found.group(1)


async def test_a_failed_message_shows_metas_code_and_detail_and_no_page_shows_its_text(make):
    whatsapp = FakeWhatsApp()
    app = make(channel=whatsapp, console={"enabled": True}, privacy={"retention_hours": 0})
    app.operators.add_user(USER, hash_password(PASSWORD))
    seed_template(app, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="test",
                                  proof="ticked the box at checkout"))

    def confirmation() -> Outgoing:
        return Outgoing(to=PHONE, content=TemplateContent(name="order_confirmation", language="en",
                                                          body=[SECRET, "1042"]))

    whatsapp.fail_next(FatalDeliveryError("(#132000) Number of parameters does not match", vendor_code=132000,
                                          details="body: expected 3 parameters, got 2", trace_id="AbC123trace"))
    failed = app.send(confirmation()).id
    await Worker(app).run_until_idle()
    kept = app.send(confirmation()).id  # queued: its text and number are still kept
    stored = {mid: app.message(mid) for mid in (failed, kept)}
    assert stored[failed]["status"] == "failed" and stored[failed]["error_code"] == "132000"
    assert stored[kept]["content"] is not None and SECRET in stored[kept]["content"]
    assert stored[failed]["content"] is None and stored[failed]["recipient"] is None  # finished: erased

    async with console(app) as client:
        await log_in(client)
        pages = {path: (await client.get(path)).text for path in (
            f"/console/messages/{failed}", f"/console/messages/{kept}", "/console/messages", "/console",
            "/console/messages?status=failed", "/console/events")}
    one = pages[f"/console/messages/{failed}"]
    assert 'class="stopped">failed' in one
    assert fact(one, "Error code") == "132000"
    assert fact(one, "Detail") == stored[failed]["error_details"]
    assert fact(one, "Trace id \\(for Meta support\\)") == stored[failed]["fbtrace_id"] == "AbC123trace"
    assert fact(one, "Reason") == stored[failed]["reason"]
    waiting = pages[f"/console/messages/{kept}"]
    assert fact(waiting, "Text") == "kept until it is finished" and fact(waiting, "To") == "+49*********78"
    assert fact(one, "Text") == "erased" and fact(one, "To") == "erased"
    for path, page in pages.items():
        assert SECRET not in page, path
        assert digits(PHONE) not in digits(page), path
