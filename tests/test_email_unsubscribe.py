"""The marketing-email rule on its own: a link in every body, the escaped form counting in HTML."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connectzap.connectors.email.unsubscribe import ONE_CLICK, UnsubscribeLinks, unsubscribe_refusal

LINKS = UnsubscribeLinks(url="https://shop.example/u/m1?x=1&y=2")


def test_the_rule_is_only_for_marketing() -> None:
    assert unsubscribe_refusal("utility", UnsubscribeLinks(), "no link", None) is None
    assert unsubscribe_refusal("marketing", UnsubscribeLinks(), "no link", None) is not None


def test_every_body_must_carry_the_link() -> None:
    url = LINKS.url or ""
    assert unsubscribe_refusal("marketing", LINKS, url, None) is None
    assert unsubscribe_refusal("marketing", LINKS, url, url.replace("&", "&amp;")) is None
    assert "html body" in (unsubscribe_refusal("marketing", LINKS, url, "<p>none</p>") or "")
    assert "text body" in (unsubscribe_refusal("marketing", LINKS, "none", url) or "")


@given(st.text(max_size=60), st.text(max_size=60))
def test_a_body_without_the_link_is_always_refused(text: str, html: str) -> None:
    url = LINKS.url or ""
    refused = unsubscribe_refusal("marketing", LINKS, text, html)
    has = url in text and (url in html or url.replace("&", "&amp;") in html)
    assert (refused is None) == has


def test_headers_follow_rfc_8058() -> None:
    both = UnsubscribeLinks(mailto="u@shop.example", url="https://shop.example/u")
    assert both.headers() == {
        "List-Unsubscribe": "<https://shop.example/u>, <mailto:u@shop.example?subject=unsubscribe>",
        "List-Unsubscribe-Post": ONE_CLICK}
    assert UnsubscribeLinks().headers() == {}
    assert UnsubscribeLinks(mailto="u@shop.example").in_body() == "mailto:u@shop.example"
