"""What the CLI and the REST API do with campaigns: create, load an audience, preview, control,
show, list, results. Each method is one or a few transactions; the engine (:mod:`.engine`) does
the sending, in the workers."""

from __future__ import annotations

import csv
import io
import json
import secrets
import time
from collections import Counter
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from sqlalchemy import Connection, and_, case, func, select

from .. import gate
from ..clock import iso_utc
from ..errors import ConflictError, NotFoundError, PayloadError
from ..messages import TemplateContent
from ..settings import PricingSettings
from ..store import bulk
from ..store.database import now
from ..store.schema import campaign_recipients as recipients
from ..store.schema import campaigns
from ..wording import counted, plural
from . import engine, send_window, sources
from . import marketing_api as mm_api
from .audience import BadLine, Recipient
from .sources import FieldMap
from .states import Action, State

if TYPE_CHECKING:
    from ..app import Connectzap

AUDIENCE_BATCH = 1000
SHOWN_BAD_LINES = 100
EDITABLE = (State.DRAFT, State.SCHEDULED)
PAST_SLACK_SECONDS = 60.0
"""How far in the past a start time may be and still mean "now" (``--at`` from a clock a little behind)."""
CHOICE_EDITABLE = (State.DRAFT, State.SCHEDULED, State.PAUSED)
"""While a campaign's Marketing Messages API choice may change: nothing of it is sending then
(a pause takes back what waited in the outbox)."""


ABANDONED_AFTER = 86_400.0
"""Seconds after which an audience staged for a campaign being created, and no such campaign, was
left by a create killed mid-load: no create's load lasts that long."""


def new_campaign_id(at: float | None = None) -> str:
    """An id that sorts by its time ``at`` (now by default): fixed-width hex milliseconds first."""
    return f"c{int((time.time() if at is None else at) * 1000):011x}{secrets.token_hex(4)}"


class CampaignView(BaseModel):
    """A campaign as the CLI and the REST API show it."""

    id: str
    name: str
    state: str
    template: str
    language: str
    window: str | None
    rate_per_minute: float | None
    starts_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    recipients: int
    outcomes: dict[str, int] = Field(description="Recipients per outcome.")
    waiting: str | None = Field(description="Why nothing is admitted now, and until when; null when nothing holds it.")
    marketing_api: mm_api.MarketingApi = Field(
        "account", description="How its marketing template is sent: through Meta's Marketing Messages API (use), "
                               "the Cloud API (avoid), or as the number's account is configured (account).")

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class NoRecipients(PayloadError):
    """The audience has not a single recipient: refused, the campaign's audience left as it was.
    ``result`` counts what was skipped on the way (bad lines, records without a number)."""

    code = "no_recipients"

    def __init__(self, result: AudienceResult, *, records: bool = False) -> None:
        skipped = result.skipped_text(records=records)
        super().__init__("no recipients" + (f", {skipped}" if skipped else ""), field="audience")
        self.result = result


class InvalidLines(PayloadError):
    """The audience has invalid lines and ``skip_invalid`` was not given: refused, and nothing of it
    is kept (a replaced audience stays as it was). ``bad`` holds the first 100 of them, each a
    :class:`BadLine` with its line number (a file's line, or a list's index from 1) and why;
    ``bad_count`` how many there were, ``skipped`` how many by reason; ``result`` is the whole
    :class:`AudienceResult` (nothing added). Fix the lines, or load again with ``skip_invalid=True``
    to keep the valid ones."""

    code = "invalid_lines"

    def __init__(self, result: AudienceResult) -> None:
        count = result.bad_count
        super().__init__(f"{counted(count, 'bad line')}; fix {plural(count, 'it', 'them')} (or load the other lines "
                         "with skip_invalid)", field="audience")
        self.result = result

    @property
    def bad(self) -> list[BadLine]:
        return self.result.bad

    @property
    def bad_count(self) -> int:
        return self.result.bad_count

    @property
    def skipped(self) -> Counter[str]:
        return self.result.skipped


@dataclass
class AudienceResult:
    added: int = 0
    duplicates: int = 0
    bad: list[BadLine] = field(default_factory=list)
    bad_count: int = 0
    loaded: bool = True
    """Always True for a result :meth:`Campaigns.load_audience` returns (kept for earlier callers):
    invalid lines without ``skip_invalid`` raise :class:`InvalidLines`, whose ``result`` says False."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Bad lines by their reason without its details (``no phone number``, ``invalid phone number``)."""

    def skipped_text(self, *, records: bool = False) -> str:
        """What the load skipped, in the one wording the CLI, the console and REST's refusals share
        (a refusal's and a success line's alike): ``1 duplicate of an earlier line skipped`` (a contact
        an earlier line named; ``record`` for a source's), ``2 bad lines skipped`` (a file's), ``2
        records skipped (no phone number 1, invalid phone number 1)`` (a source's, by reason), joined
        by commas; empty when nothing was."""
        said = []
        if self.duplicates:
            said.append(f"{counted(self.duplicates, 'duplicate')} of an earlier {'record' if records else 'line'} "
                        "skipped")
        if self.bad_count and not records:
            said.append(f"{counted(self.bad_count, 'bad line')} skipped")
        elif self.bad_count:
            reasons = ", ".join(f"{reason} {n}" for reason, n in self.skipped.most_common())
            said.append(f"{counted(self.bad_count, 'record')} skipped ({reasons})")
        return ", ".join(said)


def _reason_of(bad: BadLine) -> str:
    """A bad line's reason without what names the line's record or echoes its value."""
    reason = bad.reason.split(": ", 1)[1] if _RECORD_PREFIX.match(bad.reason) else bad.reason
    return reason.split(":", 1)[0].strip()


_RECORD_PREFIX = re.compile(r"^[\w.:-]+: ")


@dataclass(frozen=True)
class Draft:
    """A new campaign's row, checked but not written (:meth:`Campaigns.draft`, :meth:`Campaigns.save`)."""

    values: dict[str, Any]


@dataclass
class SourceRows:
    """An opened audience source (:meth:`Campaigns.open_source`): its rows, and the reader to close."""

    source: str
    reader: sources.SourceReader
    rows: Iterator[Recipient | BadLine]


@dataclass
class Preview:
    """Who the campaign can reach now, and why the others would be refused: the gate's own checks."""

    recipients: int
    category: str | None
    reachable: int
    refused: dict[str, int]
    examples: dict[str, str]
    """One detail per refusal reason (the gate's words)."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


RESULT_COLUMNS = ["line", "phone", "contact_key", "outcome", "reason", "error_code", "error_title", "message_id",
                  "admitted_at"]
"""The columns of a campaign's results: masked numbers and keyed hashes, never a number or a parameter."""


def results_csv(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Results as CSV text, the header first, then a row at a time (a million rows stream)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        at = row.get("admitted_at")
        writer.writerow({**row, "admitted_at": iso_utc(at) if at else ""})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


class CampaignReport(BaseModel):
    """How a campaign did: its counts, the rates of those it reached, failures by the channel's code,
    refusals by the gate's reason, and what Meta's per-message pricing said about its messages."""

    id: str
    recipients: int
    outcomes: dict[str, int]
    reached: int = Field(description="Accepted by the channel: sent, delivered, read or replied.")
    delivered_rate: float | None = Field(description="Of those reached, delivered (or further); null when none.")
    read_rate: float | None
    replied_rate: float | None
    failed_by_code: dict[str, int]
    refused_by_reason: dict[str, int]
    pricing: list[dict[str, Any]] = Field(description="Messages by Meta's pricing category, type and billable flag.")
    within_hours: float = Field(description="The N of the *_within counts: hours from the send (its `sent` "
                                            "status, else its admission).")
    delivered_within: int = Field(description="Messages reported delivered within within_hours of the send.")
    delivered_within_rate: float | None = Field(description="Of those reached, delivered within within_hours.")
    read_within: int = Field(description="Messages reported read within within_hours of the send.")
    read_within_rate: float | None = Field(description="Of those reached, read within within_hours.")
    replied_within: int = Field(description="Recipients who replied within within_hours of the send.")
    replied_within_rate: float | None = Field(description="Of those reached, replied within within_hours.")
    currency: str = Field(description="ISO 4217 code of the costs ([pricing] currency).")
    cost: str = Field(description="What the billable messages cost at the [pricing] rates (a decimal number).")
    cost_by_outcome: dict[str, str] = Field(description="The cost by the recipients' outcome (decimal numbers).")
    billable_messages: int = Field(description="Messages Meta's pricing called billable.")
    unpriced_billable: int = Field(description="Billable messages with no [pricing] rate for their category and "
                                               "country: not in the cost.")


REACHED = ("sent", "delivered", "read", "replied")
REPORT_CSV_COLUMNS = ["kind", "key", "count", "rate", "cost", "currency"]


def report_csv(report: CampaignReport) -> str:
    """A report as one flat CSV table: a row per outcome (with its cost), per rate, per failure code,
    per refusal reason, and the total."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REPORT_CSV_COLUMNS)
    money = report.currency
    for outcome, count in report.outcomes.items():
        writer.writerow(["outcome", outcome, count, _rate(count, report.recipients),
                         report.cost_by_outcome.get(outcome, "0"), money])
    hours = f"{report.within_hours:g}h"
    rates: list[tuple[str, int | str, float | None]] = [
        ("delivered", "", report.delivered_rate), ("read", "", report.read_rate), ("replied", "", report.replied_rate),
        (f"delivered_within_{hours}", report.delivered_within, report.delivered_within_rate),
        (f"read_within_{hours}", report.read_within, report.read_within_rate),
        (f"replied_within_{hours}", report.replied_within, report.replied_within_rate)]
    for key, within, rate in rates:
        writer.writerow(["rate", key, within, "" if rate is None else rate, "", ""])
    for code, count in report.failed_by_code.items():
        writer.writerow(["failed_code", code, count, "", "", ""])
    for reason, count in report.refused_by_reason.items():
        writer.writerow(["refused_reason", reason, count, "", "", ""])
    writer.writerow(["unpriced_billable", "", report.unpriced_billable, "", "", ""])
    writer.writerow(["total", "", report.recipients, "", report.cost, money])
    return buffer.getvalue()


def costs(rows: Iterable[tuple[str, str | None, str | None, int]], table: PricingSettings
          ) -> tuple[Decimal, dict[str, Decimal], int]:
    """The cost of billable messages counted by (outcome, pricing category, country): the total,
    by outcome, and how many had no rate (left out of both)."""
    total, unpriced = Decimal(0), 0
    by_outcome: dict[str, Decimal] = {}
    for outcome, category, country, count in rows:
        price = table.price(category, country)
        if price is None:
            unpriced += count
            continue
        by_outcome[outcome] = by_outcome.get(outcome, Decimal(0)) + price * count
        total += price * count
    return total, by_outcome, unpriced


def _by(conn: Connection, column: Any, *where: Any) -> dict[str, int]:
    """Rows matching ``where``, counted by ``column`` (``unknown`` for none)."""
    rows = conn.execute(select(column, func.count()).where(*where).group_by(column)).all()
    return {str(row[0] or "unknown"): int(row[1]) for row in rows}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _time(at: float | None) -> datetime | None:
    return datetime.fromtimestamp(at, UTC) if at is not None else None


class Campaigns:
    """The campaigns of an engine (``app.campaigns``)."""

    def __init__(self, app: Connectzap) -> None:
        self.app = app
        self.db = app.db

    # --- creating -------------------------------------------------------------------------

    def create(self, name: str, template: dict[str, Any], *, starts_at: datetime | None = None,
               window: str | None = None, rate_per_minute: float | None = None,
               business_phone_number_id: str | None = None, marketing_api: str | None = None) -> CampaignView:
        """A draft campaign of ``template`` (name, language, optional header, buttons and default body);
        ``marketing_api``: use, avoid or account (:mod:`.marketing_api`)."""
        return self.save(self.draft(name, template, starts_at=starts_at, window=window,
                                    rate_per_minute=rate_per_minute,
                                    business_phone_number_id=business_phone_number_id,
                                    marketing_api=marketing_api))[0]

    def draft(self, name: str, template: dict[str, Any], *, starts_at: datetime | None = None,
              window: str | None = None, rate_per_minute: float | None = None,
              business_phone_number_id: str | None = None, marketing_api: str | None = None) -> Draft:
        """What :meth:`create` would write, checked (a :class:`PayloadError`, or a ``ValueError`` for
        a bad ``window``) but not written: :meth:`save` writes it."""
        try:
            checked = TemplateContent.model_validate({**template, "type": "template"})
        except ValueError as exc:
            raise PayloadError(f"template: {exc}") from None
        if rate_per_minute is not None and not rate_per_minute > 0:
            raise PayloadError("rate_per_minute must be more than 0")
        start, end = send_window.parse_window(window) if window else (None, None)
        choice = self._marketing_api(marketing_api, business_phone_number_id)
        stored = checked.model_dump(mode="json", exclude_none=True)
        return Draft(dict(id=new_campaign_id(), name=name, state=State.DRAFT.value, template=json.dumps(stored),
                          business_phone_number_id=business_phone_number_id,
                          starts_at=starts_at.timestamp() if starts_at else None, window_start=start,
                          window_end=end, rate_per_minute=rate_per_minute, marketing_api=choice))

    def save(self, draft: Draft, audience: Iterable[Recipient | BadLine] | SourceRows | None = None, *,
             skip_invalid: bool = False) -> tuple[CampaignView, AudienceResult]:
        """Write ``draft`` with ``audience`` (rows, or an opened source: :meth:`load_source`), refused
        as :meth:`load_audience` refuses it. The audience is loaded first, under the draft's
        :func:`.engine.staging_id`, and becomes the campaign's in the transaction that creates the
        campaign: a refused or interrupted create leaves no campaign (never an empty draft)."""
        if isinstance(audience, SourceRows):
            try:
                return self._save(draft, audience.rows, True, audience.source)
            finally:
                audience.reader.close()
        return self._save(draft, audience, skip_invalid, None)

    def _save(self, draft: Draft, rows: Iterable[Recipient | BadLine] | None, skip_invalid: bool,
              source: str | None) -> tuple[CampaignView, AudienceResult]:
        campaign_id = draft.values["id"]
        staged = engine.staging_id(campaign_id)
        if rows is not None:
            self._sweep_abandoned()
        result = AudienceResult() if rows is None else self._fill(staged, rows, skip_invalid, source)
        t = now()
        try:
            with self.db.begin() as conn:
                conn.execute(campaigns.insert().values(**draft.values, audience_source=source, created_at=t,
                                                       updated_at=t))
                if rows is not None:
                    conn.execute(recipients.update().where(recipients.c.campaign_id == staged)
                                 .values(campaign_id=campaign_id))
        except BaseException:
            self._clear(staged)
            raise
        return self.get(campaign_id), result

    def _marketing_api(self, choice: str | None, number: str | None) -> str | None:
        """The stored form of a campaign's ``marketing_api``, refused when its number cannot honour it."""
        value = mm_api.stored(choice)
        mm_api.check(value, number, self.app.marketing_messages_api)
        return value

    def set_marketing_api(self, campaign_id: str, choice: str) -> CampaignView:
        """Change the campaign's ``marketing_api`` (use, avoid or account) while it is a draft,
        scheduled or paused -- ``use`` only where its number's account has the API configured."""
        value = mm_api.stored(choice)
        with self.db.begin() as conn:
            row = self._locked(conn, campaign_id)
            if row.state not in CHOICE_EDITABLE:
                raise ConflictError(f"campaign {campaign_id} is {row.state}: its marketing_api can only change while "
                                    "it is a draft, scheduled or paused (pause it first)")
            mm_api.check(value, row.business_phone_number_id, self.app.marketing_messages_api)
            conn.execute(campaigns.update().where(campaigns.c.id == campaign_id)
                         .values(marketing_api=value, updated_at=now()))
        return self.get(campaign_id)

    def load_audience(self, campaign_id: str, rows: Iterable[Recipient | BadLine], *,
                      skip_invalid: bool = False, source: str | None = None) -> AudienceResult:
        """Replace the campaign's audience with ``rows`` (streamed: written a batch at a time, so a
        million lines take constant memory). A contact on several lines is kept once (its first).
        A bad line stops the load and nothing is kept, unless ``skip_invalid``: it raises
        :class:`InvalidLines`, which carries each bad line's number and reason. A failure of the
        rows' source stops it too (re-raised). Rows without a single recipient (a header only,
        nothing but skipped bad lines or records) raise :class:`NoRecipients`: an audience of nobody
        is never loaded. ``source``: the connector source the rows came from.

        An audience that replaces one is written aside (under :func:`.engine.staging_id`, which no
        campaign has) and takes the old one's place in one transaction once it is complete: a load
        that is refused or fails leaves the campaign's audience as it was."""
        self._editable(campaign_id)
        with self.db.begin() as conn:
            replacing = self._has_audience(conn, campaign_id)
            target = engine.staging_id(campaign_id) if replacing else campaign_id
            if not replacing:
                conn.execute(campaigns.update().where(campaigns.c.id == campaign_id).values(audience_source=source))
        result = self._fill(target, rows, skip_invalid, source)
        if replacing:
            self._replace(campaign_id, target, source)
        return result

    def _sweep_abandoned(self) -> None:
        """Erase what creates killed mid-load left staged (:meth:`save`): numbers and parameters of no
        campaign, which nothing else would ever erase."""
        prefix = engine.staging_id("")
        before = engine.staging_id(new_campaign_id(time.time() - ABANDONED_AFTER))
        with self.db.begin() as conn:
            conn.execute(recipients.delete().where(
                recipients.c.campaign_id > prefix, recipients.c.campaign_id < before,
                ~select(campaigns.c.id).where(
                    campaigns.c.id == func.substr(recipients.c.campaign_id, len(prefix) + 1)).exists()))

    def _fill(self, target: str, rows: Iterable[Recipient | BadLine], skip_invalid: bool,
              source: str | None) -> AudienceResult:
        """Write ``rows`` under the campaign id ``target``, refused as :meth:`load_audience` says; a
        refused or failed load leaves nothing there."""
        self._clear(target)  # a crashed load's rows
        result = AudienceResult()
        batch: list[Recipient] = []
        try:
            for row in rows:
                if isinstance(row, BadLine):
                    result.bad_count += 1
                    result.skipped[_reason_of(row)] += 1
                    if len(result.bad) < SHOWN_BAD_LINES:
                        result.bad.append(row)
                    continue
                batch.append(row)
                if len(batch) >= AUDIENCE_BATCH:
                    self._add(target, batch, result)
                    batch = []
            self._add(target, batch, result)
        except BaseException:
            self._clear(target)
            raise
        if result.bad_count and not skip_invalid:
            self._clear(target)
            result.added = result.duplicates = 0
            result.loaded = False
            raise InvalidLines(result)
        if not result.added:
            self._clear(target)
            raise NoRecipients(result, records=source is not None)
        return result

    def kept_audience(self, campaign_id: str) -> str:
        """What a refused replacement leaves, in words (a new audience takes the old one's place only
        once loaded whole): ``the previous audience (3 recipients) is kept``."""
        count = self.get(campaign_id).recipients
        return f"the previous audience ({counted(count, 'recipient')}) is kept" if count else "no audience is loaded"

    def _replace(self, campaign_id: str, staged: str, source: str | None) -> None:
        """The staged audience in place of the campaign's, if it may still change (not started meanwhile)."""
        with self.db.begin() as conn:
            row = self._locked(conn, campaign_id)
            if row.state not in EDITABLE:
                conn.execute(recipients.delete().where(recipients.c.campaign_id == staged))
                raise ConflictError(f"campaign {campaign_id} is {row.state}: its audience can only change while it "
                                    "is a draft or scheduled")
            conn.execute(recipients.delete().where(recipients.c.campaign_id == campaign_id))
            conn.execute(recipients.update().where(recipients.c.campaign_id == staged).values(campaign_id=campaign_id))
            conn.execute(campaigns.update().where(campaigns.c.id == campaign_id).values(audience_source=source))

    def _clear(self, campaign_id: str) -> None:
        with self.db.begin() as conn:
            conn.execute(recipients.delete().where(recipients.c.campaign_id == campaign_id))

    def open_source(self, source: str, options: Mapping[str, Any], field_map: FieldMap | None = None,
                    country: str | None = None) -> SourceRows:
        """The audience ``source`` (a connector's, e.g. ``hubspot_list`` with ``{"id": "123"}``) as
        rows to :meth:`load_audience`. Its first page is read now: a missing list or refused
        credentials raise here, before anything is created or replaced."""
        connector = sources.source_connector(self.app.connectors.values(), source)
        reader = sources.SourceReader(connector.audience(sources.query_for(source, options, field_map)))
        return SourceRows(source, reader, sources.rows(reader, field_map, self.app.secret, country))

    def load_source(self, campaign_id: str, opened: SourceRows) -> AudienceResult:
        """Replace the audience with an opened source's records; those without a usable number are
        skipped and counted by reason (a CRM list always has some), never a reason to stop."""
        try:
            return self.load_audience(campaign_id, opened.rows, skip_invalid=True, source=opened.source)
        finally:
            opened.reader.close()

    def source_outcomes(self, campaign_id: str, *, after_line: int = 0,
                        limit: int = AUDIENCE_BATCH) -> list[tuple[int, str, str, str | None]]:
        """``(line, source_ref, outcome, reason)`` of the recipients read from a source, in audience
        order (the reason: the gate's, or the channel's error code): what a connector writes back to
        its records when the campaign has ended."""
        with self.db.read() as conn:
            found = conn.execute(select(recipients.c.line, recipients.c.source_ref, recipients.c.outcome,
                                        recipients.c.reason, recipients.c.error_code)
                                 .where(recipients.c.campaign_id == campaign_id, recipients.c.line > after_line,
                                        recipients.c.source_ref.is_not(None))
                                 .order_by(recipients.c.line).limit(limit)).all()
        return [(int(r.line), str(r.source_ref), str(r.outcome), r.reason or r.error_code) for r in found]

    def _add(self, campaign_id: str, batch: list[Recipient], result: AudienceResult) -> None:
        if not batch:
            return
        t = now()
        rows = [dict(campaign_id=campaign_id, contact_key=r.contact_key, line=r.line, recipient=r.phone,
                     source_ref=r.ref,
                     masked=r.masked, zones=" ".join(r.zones) or None, country=r.country,
                     params=json.dumps(r.params) if r.params else None, outcome="pending", attempt=0, backoffs=0,
                     due_at=0.0, updated_at=t) for r in batch]
        with self.db.begin() as conn:  # one statement at the driver's level: a recipient already there is skipped
            added = bulk.insert_new(self.db, conn, recipients, rows, "campaign_id, contact_key")
        result.added += added
        result.duplicates += len(rows) - added

    def _editable(self, campaign_id: str) -> Any:
        row = self._row(campaign_id)
        if row.state not in EDITABLE:
            raise ConflictError(f"campaign {campaign_id} is {row.state}: its audience can only change while it is "
                                "a draft or scheduled")
        return row

    # --- preview --------------------------------------------------------------------------

    def preview(self, campaign_id: str) -> Preview:
        """Run the gate's checks (:func:`..gate.evaluate`) over every recipient still to be admitted,
        writing nothing: how many would be queued now, how many refused and why."""
        row = self._row(campaign_id)
        mm_api.check(row.marketing_api, row.business_phone_number_id, self.app.marketing_messages_api)
        template = json.loads(row.template)
        refused: Counter[str] = Counter()
        examples: dict[str, str] = {}
        reachable = total = 0
        category: str | None = None
        after_line = -1
        while True:
            with self.db.read() as conn:
                batch = conn.execute(select(recipients.c.line, recipients.c.recipient, recipients.c.params)
                                     .where(recipients.c.campaign_id == campaign_id,
                                            recipients.c.outcome.in_(engine.WAITING),
                                            recipients.c.line > after_line)
                                     .order_by(recipients.c.line).limit(AUDIENCE_BATCH)).all()
                if not batch:
                    break
                after_line = batch[-1].line
                outgoing = [self._outgoing(template, r) for r in batch]
                facts = gate.facts_for(conn, self.app.secret, outgoing, self.app.business_accounts)
                for message in outgoing:
                    total += 1
                    key = facts.recipients.get((message.to.phone, None))
                    if key is None:
                        verdict = gate.Verdict(None, "service", "invalid_phone", gate.REASONS["invalid_phone"])
                    else:
                        verdict = gate.evaluate(facts, key, message.content, None, row.business_phone_number_id)
                    category = category or (verdict.category if verdict.category != "service" else None)
                    if verdict.reason:
                        refused[verdict.reason] += 1
                        examples.setdefault(verdict.reason, verdict.detail or gate.REASONS.get(verdict.reason, ""))
                    else:
                        reachable += 1
        return Preview(total, category, reachable, dict(refused), examples)

    @staticmethod
    def _outgoing(template: dict[str, Any], row: Any) -> Any:
        from ..messages import Outgoing
        return Outgoing(to=row.recipient, content=engine.content_for(template, json.loads(row.params or "null")))

    # --- control --------------------------------------------------------------------------

    def start(self, campaign_id: str, at: datetime | None = None) -> CampaignView:
        """Start now, or at ``at`` (scheduled: the engine starts it then). A time in the past is
        refused (beyond a minute's slack for clocks): started at once, a year typed wrong would send
        to everyone now."""
        if at is not None and at.timestamp() < now() - PAST_SLACK_SECONDS:
            raise PayloadError(f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC is in the past: give a later time to "
                               "schedule the campaign, or start it without a time to start it now",
                               field="at")
        if at is not None and at.timestamp() > now():
            with self.db.begin() as conn:
                row = self._locked(conn, campaign_id)
                self._can_send(row)
                engine.set_state(conn, row, Action.SCHEDULE)
                conn.execute(campaigns.update().where(campaigns.c.id == campaign_id)
                             .values(starts_at=at.timestamp()))
            return self.get(campaign_id)
        return self.control(campaign_id, Action.START)

    def control(self, campaign_id: str, action: Action | str) -> CampaignView:
        """pause, resume, cancel (or start) -- refused with a :class:`ConflictError` when the state
        does not allow it."""
        with self.db.begin() as conn:
            row = self._locked(conn, campaign_id)
            if Action(action) is Action.START and not self._has_audience(conn, campaign_id):
                raise ConflictError(f"campaign {campaign_id} has no audience; load one first")
            if Action(action) in (Action.START, Action.RESUME):
                self._can_send(row)
            ended = engine.set_state(conn, row, Action(action)) is State.CANCELLED
            if ended and self._announced():
                engine.announce_end(self.db, conn, campaign_id)
        return self.get(campaign_id)

    def _can_send(self, row: Any) -> None:
        """Refuse to start or resume a campaign whose choice its number's account no longer honours
        (``use``, the account's Marketing Messages API switched off since): nothing is sent."""
        mm_api.check(row.marketing_api, row.business_phone_number_id, self.app.marketing_messages_api)

    def run_once(self) -> int:
        """One engine round (what each worker does every few seconds)."""
        return engine.tick(self.db, self.app.secret, self._announced(), self.app.business_accounts,
                           self._unsendable)

    def _unsendable(self, row: Any) -> str | None:
        """Why a scheduled campaign cannot start now (the engine leaves it scheduled and shows why)."""
        try:
            self._can_send(row)
        except PayloadError as exc:
            return f"not started: {exc.message}"
        return None

    def _announced(self) -> bool:
        """Whether a campaign's end is journaled: only when something listens to it (always before
        the engine has loaded the plugins and connectors that would say)."""
        from ..hooks import delivery_targets
        from ..models import EventKind
        return not self.app.started or bool(delivery_targets(EventKind.CAMPAIGN_FINISHED.value,
                                                             self.app.connectors.values()))

    # --- reading --------------------------------------------------------------------------

    def get(self, campaign_id: str) -> CampaignView:
        with self.db.read() as conn:
            row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()
            if row is None:
                raise NotFoundError(f"no campaign {campaign_id}")
            return self._view(conn, row)

    def listing(self, limit: int = 100) -> list[CampaignView]:
        with self.db.read() as conn:
            rows = conn.execute(select(campaigns).order_by(campaigns.c.id.desc()).limit(limit)).all()
            return [self._view(conn, row) for row in rows]

    def results(self, campaign_id: str, *, after_line: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Each recipient's outcome in audience order (masked number; no parameters)."""
        self._row(campaign_id)
        with self.db.read() as conn:
            rows = conn.execute(select(recipients).where(recipients.c.campaign_id == campaign_id,
                                                         recipients.c.line > after_line)
                                .order_by(recipients.c.line).limit(limit)).all()
        return [{"line": r.line, "phone": r.masked, "contact_key": r.contact_key, "outcome": r.outcome,
                 "reason": r.reason, "error_code": r.error_code, "error_title": r.error_title,
                 "message_id": r.message_id, "admitted_at": _time(r.admitted_at)} for r in rows]

    def report(self, campaign_id: str, *, within_hours: float = 24.0) -> CampaignReport:
        """Counts, rates, failures by code, refusals by reason, pricing and cost (at the ``[pricing]``
        rates), from the stored outcomes; deliveries, reads and replies within ``within_hours`` of the send."""
        from ..store.schema import outbox
        self._row(campaign_id)
        mine = recipients.c.campaign_id == campaign_id
        joined = and_(mine, recipients.c.message_id == outbox.c.id)
        sent_at = func.coalesce(outbox.c.sent_at, recipients.c.admitted_at)
        with self.db.read() as conn:
            billed = conn.execute(
                select(recipients.c.outcome, outbox.c.pricing_category, recipients.c.country, func.count())
                .join(recipients, joined).where(outbox.c.billable.is_(True))
                .group_by(recipients.c.outcome, outbox.c.pricing_category, recipients.c.country)).all()
            limit = within_hours * 3600

            def within(at: Any) -> Any:
                return func.coalesce(func.sum(case((at - sent_at <= limit, 1), else_=0)), 0)

            quick = conn.execute(select(within(outbox.c.delivered_at), within(outbox.c.read_at),
                                        within(recipients.c.replied_at))
                                 .select_from(outbox).join(recipients, joined)).one()
            outcomes: dict[str, int] = dict(conn.execute(select(recipients.c.outcome, func.count()).where(mine)
                                                         .group_by(recipients.c.outcome)).all())
            failed = _by(conn, recipients.c.error_code, mine, recipients.c.outcome == "failed")
            refused = _by(conn, recipients.c.reason, mine, recipients.c.outcome == "refused")
            priced = conn.execute(
                select(outbox.c.pricing_category, outbox.c.pricing_type, outbox.c.billable, func.count())
                .join(recipients, and_(mine, recipients.c.message_id == outbox.c.id))
                .where(outbox.c.pricing_category.is_not(None))
                .group_by(outbox.c.pricing_category, outbox.c.pricing_type, outbox.c.billable)).all()
        reached = sum(outcomes.get(k, 0) for k in REACHED)
        delivered = sum(outcomes.get(k, 0) for k in ("delivered", "read", "replied"))
        read = sum(outcomes.get(k, 0) for k in ("read", "replied"))
        delivered_soon, read_soon, replied_soon = (int(n) for n in quick)
        counted = [(str(r[0]), _text(r[1]), _text(r[2]), int(r[3])) for r in billed]
        total, by_outcome, unpriced = costs(counted, self.app.settings.pricing)
        return CampaignReport(
            within_hours=within_hours, delivered_within=delivered_soon, read_within=read_soon,
            replied_within=replied_soon, delivered_within_rate=_rate(delivered_soon, reached),
            read_within_rate=_rate(read_soon, reached), replied_within_rate=_rate(replied_soon, reached),
            currency=self.app.settings.pricing.currency, cost=str(total),
            cost_by_outcome={k: str(v) for k, v in by_outcome.items()},
            billable_messages=sum(n for *_, n in counted), unpriced_billable=unpriced,
            id=campaign_id, recipients=sum(outcomes.values()),
            outcomes={k: outcomes[k] for k in engine.OUTCOMES if outcomes.get(k)}, reached=reached,
            delivered_rate=_rate(delivered, reached), read_rate=_rate(read, reached),
            replied_rate=_rate(outcomes.get("replied", 0), reached), failed_by_code=failed, refused_by_reason=refused,
            pricing=[{"category": c, "type": t, "billable": b, "messages": n} for c, t, b, n in priced])

    def all_results(self, campaign_id: str) -> Iterator[dict[str, Any]]:
        after = 0
        while True:
            page = self.results(campaign_id, after_line=after, limit=AUDIENCE_BATCH)
            yield from page
            if len(page) < AUDIENCE_BATCH:
                return
            after = page[-1]["line"]

    def _view(self, conn: Connection, row: Any) -> CampaignView:
        counts: dict[str, int] = dict(conn.execute(select(recipients.c.outcome, func.count()).where(
            recipients.c.campaign_id == row.id).group_by(recipients.c.outcome)).all())
        template = json.loads(row.template)
        return CampaignView(
            id=row.id, name=row.name, state=row.state, template=template["name"], language=template["language"],
            window=send_window.shown(row.window_start, row.window_end), rate_per_minute=row.rate_per_minute,
            starts_at=_time(row.starts_at), created_at=_time(row.created_at) or datetime.now(UTC),
            started_at=_time(row.started_at), ended_at=_time(row.ended_at), recipients=sum(counts.values()),
            outcomes={k: counts[k] for k in engine.OUTCOMES if counts.get(k)}, waiting=row.waiting,
            marketing_api=mm_api.shown(row.marketing_api))

    def _row(self, campaign_id: str) -> Any:
        with self.db.read() as conn:
            row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()
        if row is None:
            raise NotFoundError(f"no campaign {campaign_id}")
        return row

    def resolve(self, ref: str) -> str:
        """The id of the campaign ``ref`` names: its id, or its name (the newest campaign so named)."""
        with self.db.read() as conn:
            found = conn.execute(select(campaigns.c.id).where((campaigns.c.id == ref) | (campaigns.c.name == ref))
                                 .order_by((campaigns.c.id == ref).desc(), campaigns.c.id.desc()).limit(1)).first()
        if found is None:
            raise NotFoundError(f"no campaign with the id or name {ref!r}; `connectzap campaigns list` shows them")
        return str(found[0])

    def _locked(self, conn: Connection, campaign_id: str) -> Any:
        row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id).with_for_update()).first()
        if row is None:
            raise NotFoundError(f"no campaign {campaign_id}")
        return row

    @staticmethod
    def _has_audience(conn: Connection, campaign_id: str) -> bool:
        return conn.execute(select(recipients.c.line).where(recipients.c.campaign_id == campaign_id)
                            .limit(1)).first() is not None
