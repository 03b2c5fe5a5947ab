"""Audiences from CSV and JSON-lines files: checked line by line, deduplicated by contact, streamed;
and the preview: the gate's own verdicts over the audience, before anything is sent."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectzap.core.campaigns import (BadAudience, BadLine, InvalidLines, NoRecipients, Recipient, read_file,
                                      read_items)
from connectzap.core.campaigns.audience import format_of
from connectzap.core.errors import ConflictError, PayloadError
from connectzap.core.phones import contact_key
from connectzap.testing import seed_template
from test_campaigns import NUMBERS, campaign_with, grant

SECRET = b"audience-test-secret"


def read(text: str, fmt: str = "csv", country: str | None = None) -> list[Recipient | BadLine]:
    return list(read_file(io.StringIO(text), fmt, SECRET, country))


def test_csv_rows_become_recipients_with_positional_or_named_parameters() -> None:
    [a, b] = read("phone,country,1,2\n+4915112345600,,Ana,10%\n0151 12345601,DE,Bo,20%\n")
    assert isinstance(a, Recipient) and isinstance(b, Recipient)
    assert (a.line, a.phone, a.params, a.masked) == (2, "+4915112345600", ["Ana", "10%"], "+49*********00")
    assert (b.line, b.phone, b.params) == (3, "+4915112345601", ["Bo", "20%"])
    assert a.contact_key == contact_key("+4915112345600", SECRET) and a.zones == ("Europe/Berlin",)
    [named] = read("number,first_name\n+4915112345600,Ana\n")
    assert isinstance(named, Recipient) and named.params == {"first_name": "Ana"}


@given(st.sampled_from(["+4915112345600", "+12015550123", "+16135550123", "+442071838750", "+79161234567",
                        "+5511912345678", "+819012345678", "+971501234567"]))
def test_a_recipients_zones_and_region_are_those_of_its_number(number: str) -> None:
    """Read from the number parsed once for both, they are what looking each up alone gives: the
    zones the send window uses and the country the campaign's costs are counted by."""
    from connectzap.core.campaigns.send_window import zones_of
    from connectzap.core.phones import country_of
    [r] = read(f"phone\n{number}\n")
    assert isinstance(r, Recipient), r
    assert (r.zones, r.country) == (zones_of(r.phone), country_of(r.phone))


def test_bad_lines_are_named_with_their_line_number_and_reason() -> None:
    rows = read('phone,1\n+4915112345600,Ana\nnot a number,Bo\n+4915112345601,\n+4915112345602,"Cy",extra\n,Di\n')
    bad = [(r.line, r.reason) for r in rows if isinstance(r, BadLine)]
    assert [line for line, _ in bad] == [3, 4, 5, 6]
    assert "invalid phone number" in bad[0][1]
    assert "empty" in bad[1][1]
    assert bad[2][1] == "1 more field than the header has"
    assert bad[3][1] == "no phone number"
    assert all("not a number" not in reason for _, reason in bad)


@pytest.mark.parametrize(("header", "problem"), [
    ("name,1\n", "needs a phone column"),
    ("phone,1,first_name\n", "mixes"),
    ("phone,1,3\n", "must be 1 to 2"),
])
def test_a_header_that_cannot_be_an_audience_is_refused(header: str, problem: str) -> None:
    with pytest.raises(BadAudience, match=problem):
        read(header + "+4915112345600,a,b\n")


def test_json_lines_are_read_line_by_line() -> None:
    text = ('{"phone": "+4915112345600", "params": {"first_name": "Ana"}}\n\n'
            '{"phone": "015112345601", "country": "DE", "params": ["Bo"]}\nnot json\n[1]\n'
            '{"phone": "+4915112345602", "name": "x"}\n{"phone": "+4915112345603", "params": [true]}\n')
    rows = read(text, "jsonl")
    good = [r for r in rows if isinstance(r, Recipient)]
    assert [(r.line, r.phone, r.params) for r in good] == [(1, "+4915112345600", {"first_name": "Ana"}),
                                                           (3, "+4915112345601", ["Bo"])]
    assert [(r.line, r.reason.split(":")[0]) for r in rows if isinstance(r, BadLine)] == [
        (4, "not JSON"), (5, "each line must be a JSON object"), (6, "unknown field"),
        (7, "every parameter must be text or a number")]
    assert format_of("list.JSONL") == "jsonl" and format_of("list.ndjson") == "jsonl" and format_of("a.csv") == "csv"


def test_items_from_the_api_are_numbered_like_lines() -> None:
    rows = list(read_items([{"phone": "+4915112345600"}, {"phone": "x"}], SECRET))
    assert isinstance(rows[0], Recipient) and rows[1] == BadLine(2, rows[1].reason)


@given(st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=30))
@settings(max_examples=40, deadline=None)
def test_loading_keeps_each_contact_once_at_its_first_line(tmp_path_factory, numbers: list[str]) -> None:
    from connectzap.testing import make_app
    app = make_app(tmp_path_factory.mktemp("audience"))
    try:
        seed_template(app, "spring_sale", "Hi {{1}}", category="MARKETING")
        made = app.campaigns.create("dedupe", {"name": "spring_sale", "language": "en"})
        text = "phone,1\n" + "".join(f"{n},x{i}\n" for i, n in enumerate(numbers))
        result = app.campaigns.load_audience(made.id, read_file(io.StringIO(text), "csv", app.secret))
        assert (result.added, result.duplicates) == (len(set(numbers)), len(numbers) - len(set(numbers)))
        first_line = {}
        for i, n in enumerate(numbers):
            first_line.setdefault(n, i + 2)
        assert sorted(r["line"] for r in app.campaigns.results(made.id)) == sorted(first_line.values())
    finally:
        app.close()


def test_bad_lines_stop_the_load_unless_skipped(app) -> None:
    seed_template(app, "spring_sale", "Hi {{1}}", category="MARKETING")
    made = app.campaigns.create("spring", {"name": "spring_sale", "language": "en"})
    text = "phone,1\n+4915112345600,Ana\nbad,Bo\n"
    with pytest.raises(InvalidLines) as stopped:  # it returned loaded=False, for each caller to check
        app.campaigns.load_audience(made.id, read_file(io.StringIO(text), "csv", app.secret))
    assert isinstance(stopped.value, PayloadError) and stopped.value.code == "invalid_lines"
    assert [b.line for b in stopped.value.bad] == [3] and stopped.value.bad[0].reason.startswith("invalid phone number")
    assert (stopped.value.bad_count, dict(stopped.value.skipped)) == (1, {"invalid phone number": 1})
    assert stopped.value.message == "1 bad line; fix it (or load the other lines with skip_invalid)"
    assert stopped.value.result.added == 0 and not stopped.value.result.loaded
    assert app.campaigns.get(made.id).recipients == 0
    skipped = app.campaigns.load_audience(made.id, read_file(io.StringIO(text), "csv", app.secret),
                                          skip_invalid=True)
    assert skipped.loaded and skipped.added == 1 and skipped.bad_count == 1
    assert app.campaigns.get(made.id).recipients == 1


@pytest.mark.parametrize("replacement", ["phone,1\n+4915112345602,Cy\nbad,Di\n",  # a bad line
                                         "phone;1\n+4915112345602;Cy\n",  # a header it cannot read
                                         "phone,1\n+4915112345602,Cy\n+4915112345603"])  # a line cut short
def test_a_replacement_audience_that_is_refused_leaves_the_audience_as_it_was(app, replacement: str) -> None:
    """`campaigns audience NAME FILE` (REST PUT .../audience) with a file it refuses said "no audience
    loaded" but had already deleted the campaign's audience: a scheduled campaign was left with
    nobody to send to."""
    seed_template(app, "spring_sale", "Hi {{1}}", category="MARKETING")
    made = app.campaigns.create("spring", {"name": "spring_sale", "language": "en"})
    first = "phone,1\n+4915112345600,Ana\n+4915112345601,Bo\n"
    assert app.campaigns.load_audience(made.id, read_file(io.StringIO(first), "csv", app.secret)).added == 2
    with pytest.raises((InvalidLines, BadAudience)):
        app.campaigns.load_audience(made.id, read_file(io.StringIO(replacement), "csv", app.secret))
    assert app.campaigns.get(made.id).recipients == 2
    assert [(r["line"], r["phone"]) for r in app.campaigns.results(made.id)] == [(2, "+49*********00"),
                                                                                (3, "+49*********01")]
    good = "phone,1\n+4915112345602,Cy\n+4915112345602,Cy again\n"
    replaced = app.campaigns.load_audience(made.id, read_file(io.StringIO(good), "csv", app.secret))
    assert (replaced.loaded, replaced.added, replaced.duplicates) == (True, 1, 1)
    assert [r["phone"] for r in app.campaigns.results(made.id)] == ["+49*********02"]



@pytest.mark.parametrize("replacement", ["phone,1\n", "phone,1\nbad,Di\n,Ed\n"])
def test_an_audience_without_a_single_recipient_is_refused_and_the_previous_one_kept(app, replacement: str) -> None:
    """Every caller (CLI, REST, console, a connector's source) replaced a campaign's audience with
    nobody when the rows held no recipient; loading refuses it, whoever calls."""
    seed_template(app, "spring_sale", "Hi {{1}}", category="MARKETING")
    made = app.campaigns.create("spring", {"name": "spring_sale", "language": "en"})
    first = "phone,1\n+4915112345600,Ana\n+4915112345601,Bo\n"
    assert app.campaigns.load_audience(made.id, read_file(io.StringIO(first), "csv", app.secret)).added == 2
    with pytest.raises(NoRecipients) as refused:
        app.campaigns.load_audience(made.id, read_file(io.StringIO(replacement), "csv", app.secret),
                                    skip_invalid=True)
    assert refused.value.code == "no_recipients" and refused.value.result.added == 0
    assert app.campaigns.get(made.id).recipients == 2
    assert app.campaigns.kept_audience(made.id) == "the previous audience (2 recipients) is kept"
    empty = app.campaigns.create("empty", {"name": "spring_sale", "language": "en"})
    with pytest.raises(NoRecipients, match="^no recipients$"):
        app.campaigns.load_audience(empty.id, iter([]))
    assert app.campaigns.kept_audience(empty.id) == "no audience is loaded"

def test_the_audience_cannot_change_once_the_campaign_runs(app) -> None:
    grant(app, NUMBERS[0])
    made = campaign_with(app, NUMBERS[:1])
    app.campaigns.control(made.id, "start")
    with pytest.raises(ConflictError, match="is running"):
        app.campaigns.load_audience(made.id, iter([]))


# --- preview ------------------------------------------------------------------------------------------

def test_the_preview_counts_who_can_be_reached_and_why_the_others_cannot(app) -> None:
    for phone in NUMBERS[:3]:
        grant(app, phone)
    grant(app, NUMBERS[3], granted=False)
    made = campaign_with(app, NUMBERS[:6])
    preview = app.campaigns.preview(made.id)
    assert (preview.recipients, preview.category, preview.reachable) == (6, "marketing", 3)
    assert preview.refused == {"opted_out": 1, "no_consent": 2}
    assert preview.examples["no_consent"] == "no marketing opt-in on record"
    # it matches what the campaign then does, and it wrote nothing
    assert app.campaigns.get(made.id).outcomes == {"pending": 6}
    app.campaigns.control(made.id, "start")
    app.campaigns.run_once()
    assert app.campaigns.get(made.id).outcomes == {"queued": 3, "refused": 3}


def test_the_preview_reports_parameters_that_do_not_fit_the_template(app) -> None:
    grant(app, NUMBERS[0])
    seed_template(app, "two_params", "Hi {{1}}, {{2}} off", category="MARKETING")
    made = app.campaigns.create("p", {"name": "two_params", "language": "en"})
    app.campaigns.load_audience(made.id, read_file(io.StringIO(f"phone,1\n{NUMBERS[0]},Ana\n"), "csv", app.secret))
    assert app.campaigns.preview(made.id).refused == {"param_mismatch": 1}


def test_a_line_with_fewer_fields_than_the_header_says_which_columns_it_lacks() -> None:
    """A row cut short (a parameter column missing) was "every parameter must be text or a number",
    which names neither the problem nor the fix."""
    [short, shorter, whole] = read("phone,country,1,2\n+4915112345600,,Ana\n+4915112345601\n+4915112345602,,Bo,5%\n")
    assert isinstance(short, BadLine) and isinstance(shorter, BadLine) and isinstance(whole, Recipient)
    assert (short.line, short.reason) == (2, "1 field fewer than the header has: no value for column 2")
    assert (shorter.line, shorter.reason) == (3, "3 fields fewer than the header has: no value for columns "
                                                 "country, 1, 2")


@pytest.mark.parametrize(("text", "problem"), [
    ("phone;country;1;2\n+4915112345600;;Ana;5%\n", "separated by ';'"),
    ("phone\tcountry\n+4915112345600\t\n", "separated by tabs"),
    ("", "the file is empty"),
    ("\n\n", "the file is empty"),
])
def test_a_semicolon_separated_or_empty_file_is_refused_saying_so(text: str, problem: str) -> None:
    with pytest.raises(BadAudience, match=problem) as refused:
        read(text)
    assert "comma" in str(refused.value) or "empty" in problem


def test_skipped_lines_and_duplicates_are_worded_once_in_the_core() -> None:
    """The CLI said "1 duplicate of an earlier line skipped", the console "1 duplicate skipped":
    both show AudienceResult.skipped_text, which words duplicates with the bad lines."""
    from collections import Counter

    from connectzap.core.campaigns import AudienceResult
    assert AudienceResult(added=3).skipped_text() == ""
    assert AudienceResult(added=3, duplicates=1).skipped_text() == "1 duplicate of an earlier line skipped"
    assert AudienceResult(added=3, duplicates=2, bad_count=1).skipped_text() == \
        "2 duplicates of an earlier line skipped, 1 bad line skipped"
    assert AudienceResult(added=3, duplicates=1, bad_count=2,
                          skipped=Counter({"no phone number": 2})).skipped_text(records=True) == \
        "1 duplicate of an earlier record skipped, 2 records skipped (no phone number 2)"


@given(st.lists(st.sampled_from([*NUMBERS[:4], "bad", "12"]), min_size=1, max_size=20))
@settings(max_examples=40, deadline=None)
def test_a_load_with_invalid_lines_raises_and_keeps_nothing(tmp_path_factory, lines: list[str]) -> None:
    """Without skip_invalid, any invalid line raises InvalidLines (each one named with its line) and
    the audience the campaign had is exactly what it has after: no caller can forget to check."""
    from connectzap.testing import make_app
    app = make_app(tmp_path_factory.mktemp("refusal"))
    try:
        seed_template(app, "spring_sale", "Hi {{1}}", category="MARKETING")
        made = app.campaigns.create("refusal", {"name": "spring_sale", "language": "en"})
        app.campaigns.load_audience(made.id, read_file(io.StringIO(f"phone,1\n{NUMBERS[7]},x\n"), "csv", app.secret))
        before = app.campaigns.results(made.id)
        text = "phone,1\n" + "".join(f"{n},x{i}\n" for i, n in enumerate(lines))
        invalid = [i + 2 for i, n in enumerate(lines) if n in ("bad", "12")]
        try:
            result = app.campaigns.load_audience(made.id, read_file(io.StringIO(text), "csv", app.secret))
        except InvalidLines as exc:
            assert invalid and [b.line for b in exc.bad] == invalid and exc.bad_count == len(invalid)
            assert app.campaigns.results(made.id) == before
        else:
            assert not invalid and result.loaded and result.added == len(set(lines))
    finally:
        app.close()
