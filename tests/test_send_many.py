"""Batch admission gives every message exactly the verdict single admissions give."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectzap import Category, ConsentChange, Outgoing, TemplateContent, TextContent
from connectzap.testing import seed_template

PHONES = ["+4915112345670", "+4915112345671", "+4915112345672"]


def message(phone: str, kind: str, key: str | None) -> Outgoing:
    content = {"utility": TemplateContent(name="shipped", language="en", body=["1"]),
               "marketing": TemplateContent(name="promo", language="en", body=[]),
               "unknown": TemplateContent(name="nope", language="en", body=[]),
               "text": TextContent(body="hi")}[kind]
    return Outgoing(to=phone, content=content, idempotency_key=key)


def prepare(app) -> None:  # type: ignore[no-untyped-def]
    seed_template(app, "shipped", "Order {{1}} shipped")
    seed_template(app, "promo", "Sale!", category="MARKETING")
    app.set_consent(ConsentChange(phone=PHONES[0], category=Category.UTILITY, granted=True, source="t", proof="p"))
    app.set_consent(ConsentChange(phone=PHONES[1], category=Category.MARKETING, granted=True, source="t", proof="p"))


_fresh = itertools.count()

batches = st.lists(st.tuples(st.sampled_from(PHONES), st.sampled_from(["utility", "marketing", "unknown", "text"]),
                             st.one_of(st.none(), st.sampled_from(["k1", "k2"]))), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=batches)
def test_send_many_decides_like_one_by_one(make, batch):  # type: ignore[no-untyped-def]
    n = next(_fresh)
    one_by_one, bulk = make(f"single{n}"), make(f"bulk{n}")  # fresh databases for every example
    try:
        for app in (one_by_one, bulk):
            prepare(app)
        singles = [one_by_one.send(message(*item)) for item in batch]
        many = bulk.send_many([message(*item) for item in batch])
        assert [(d.status, d.reason, d.duplicate) for d in many] == \
               [(d.status, d.reason, d.duplicate) for d in singles]
        keyed = {item[2] for item in batch if item[2]}
        assert len(bulk.messages(limit=100)) == len([i for i in batch if not i[2]]) + len(keyed)
    finally:
        for app in (one_by_one, bulk):
            app.close()
