"""REST ``/v1/campaigns``: create a campaign with its audience, preview it, control it, read its
results (JSON pages, or every recipient as CSV). Same API keys and errors as the rest of ``/v1``."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..campaigns import (Action, AudienceResult, BadAudience, CampaignReport, CampaignView, InvalidLines,
                         NoRecipients, Preview, read_file, read_items, report_csv, results_csv)
from ..campaigns.marketing_api import MarketingApi
from ..errors import PayloadError
from ..messages import ButtonParam, HeaderParam
from .auth import bearer_scheme
from .errors import ErrorBody, error_response
from .guards import ApiRoute
from .rest import ERRORS, Engine, IsoTime

router = APIRouter(prefix="/v1/campaigns", route_class=ApiRoute, dependencies=[Depends(bearer_scheme)],
                   tags=["campaigns"])

AUDIENCE_LIMIT = 10_000
"""Recipients in a JSON request; larger audiences are uploaded as a file (PUT .../audience)."""
CampaignRef = Annotated[str, Path(min_length=1, max_length=200, description="The campaign's id, or its name.")]


def _errors(*extra: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    return {**ERRORS, **{status: {"model": ErrorBody, "description": text}
                         for status, text in ((404, "No such campaign"), *extra)}}


class CampaignTemplate(BaseModel):
    """The approved template every recipient gets; ``body`` is the default body parameters (each
    recipient's own ``params`` replace a list, or are merged over named ones)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=2, max_length=16)
    header: HeaderParam | None = None
    body: list[str] | dict[str, str] = Field(default_factory=list)
    buttons: list[ButtonParam] = Field(default_factory=list, max_length=10)


class AudienceItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(min_length=1, max_length=64)
    country: str | None = Field(None, min_length=2, max_length=2)
    params: list[str] | dict[str, str] | None = None


SourceOption = str | int | float | bool | list[str]


class AudienceSource(BaseModel):
    """An audience read from an enabled connector, e.g. ``{"source": "hubspot_list", "id": "123"}``
    or ``{"source": "woocommerce", "days": 30, "min_total": 50, "status": ["completed"]}``. Every
    field besides these is an option of the source (docs/campaigns.md lists them)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, SourceOption] = Field(init=False)
    source: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$",
                        description="hubspot_list, woocommerce, or another connector's source.")
    params_from: list[str] | dict[str, str] | None = Field(
        None, description="Body parameters from each record's fields: a list (positional) or parameter -> field.")
    country: str | None = Field(None, min_length=2, max_length=2,
                                description="Country for national numbers of records that name none.")

    def options(self) -> dict[str, SourceOption]:
        return dict(self.__pydantic_extra__ or {})


def _open(app: Any, given: AudienceSource) -> Any:
    return app.campaigns.open_source(given.source, given.options(), given.params_from, given.country)


class CampaignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    template: CampaignTemplate
    audience: list[AudienceItem] = Field(default_factory=list, max_length=AUDIENCE_LIMIT)
    audience_source: AudienceSource | None = Field(
        None, description="Read the audience from a connector instead (then leave `audience` empty).")
    country: str | None = Field(None, min_length=2, max_length=2,
                                description="Country for national numbers in the audience.")
    skip_invalid: bool = Field(False, description="Keep the valid recipients when some are invalid.")
    window: str | None = Field(None, pattern=r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$",
                               description="Send only between these local times of each recipient (09:00-20:00).")
    rate_per_minute: float | None = Field(None, gt=0, le=1_000_000)
    business_phone_number_id: str | None = Field(None, min_length=1, max_length=64)
    marketing_api: MarketingApi = Field(
        "account", description="Send its marketing template through Meta's Marketing Messages API (use), the Cloud "
                               "API (avoid), or as the number's account is configured (account). use is refused "
                               "when that account has no Marketing Messages API configured.")


class BadLineOut(BaseModel):
    line: int
    reason: str


class AudienceOut(BaseModel):
    loaded: bool = Field(True, description="Always true (kept for clients of earlier versions): invalid lines "
                                           "without `skip_invalid` are refused with 422 `invalid_lines`.")
    added: int
    duplicates: int = Field(description="Lines naming a contact an earlier line named (the first is kept).")
    invalid: int
    invalid_lines: list[BadLineOut] = Field(description="The first 100 invalid lines, each with why.")
    invalid_by_reason: dict[str, int] = Field(
        default_factory=dict,
        description="Invalid lines (records of a source: skipped) by reason, e.g. no phone number.")

    @classmethod
    def of(cls, result: AudienceResult) -> AudienceOut:
        return cls(added=result.added, duplicates=result.duplicates, invalid=result.bad_count,
                   invalid_lines=[BadLineOut(line=b.line, reason=b.reason) for b in result.bad],
                   invalid_by_reason=dict(result.skipped))


class AudienceRefusal(ErrorBody):
    """A 422 of the routes that load an audience. Refused for ``invalid_lines``, it lists the lines
    that stopped the load, each with why; nothing was created or replaced."""

    invalid: int | None = Field(None, description="How many lines were invalid.")
    invalid_lines: list[BadLineOut] | None = Field(None, description="The first 100 invalid lines, each with why.")
    invalid_by_reason: dict[str, int] | None = Field(None, description="Invalid lines by reason.")


class CreatedCampaign(BaseModel):
    campaign: CampaignView
    audience: AudienceOut


class PreviewOut(BaseModel):
    recipients: int
    category: str | None
    reachable: int = Field(description="Would be queued now: every check of the send gate passes.")
    refused: dict[str, int] = Field(description="Would be refused, by the gate's reason.")
    examples: dict[str, str] = Field(description="The gate's words for each reason.")

    @classmethod
    def of(cls, preview: Preview) -> PreviewOut:
        return cls.model_validate(preview.as_dict())


class ResultOut(BaseModel):
    line: int
    phone: str = Field(description="Masked.")
    contact_key: str
    outcome: str
    reason: str | None
    error_code: str | None
    error_title: str | None
    message_id: str | None
    admitted_at: datetime | None


class ResultPage(BaseModel):
    results: list[ResultOut]
    next_cursor: int | None = Field(None, description="Pass as `after` for the next page; null at the end.")


AUDIENCE_REFUSED: dict[int | str, dict[str, Any]] = {422: {
    "model": AudienceRefusal,
    "description": "Invalid input; or an audience with invalid lines and no `skip_invalid` (`invalid_lines`, each "
                   "line listed with why), or without a single recipient (`no_recipients`): nothing is created "
                   "or replaced"}}


def _refused(exc: NoRecipients, what: str, kept: str) -> PayloadError:
    """The refusal of an audience without a single recipient, saying what the campaign keeps."""
    return PayloadError(f"{what}: {exc.message} -- {kept}", code=exc.code, field=exc.field)


def _invalid_lines(exc: InvalidLines, kept: str) -> JSONResponse:
    """The refusal of an audience with invalid lines (no ``skip_invalid``): each line and why, as
    the CLI prints them, and what the campaign keeps."""
    lines = AudienceOut.of(exc.result)
    return error_response(422, exc.code, f"audience: {exc.message} -- {kept}", field="audience", invalid=lines.invalid,
                          invalid_lines=[line.model_dump() for line in lines.invalid_lines],
                          invalid_by_reason=lines.invalid_by_reason)


def _resolve(app: Any, ref: str) -> str:
    resolved: str = app.campaigns.resolve(ref)
    return resolved


@router.post("", status_code=201, response_model=CreatedCampaign, summary="Create a draft campaign with its audience",
             responses=_errors((415, "Body is not application/json")) | AUDIENCE_REFUSED)
def create_campaign(app: Engine, body: CampaignCreate) -> CreatedCampaign | JSONResponse:
    """A draft: nothing is sent until it is started. Invalid recipients are listed with their index
    (from 1) and why; unless ``skip_invalid``, the campaign is refused then (422 ``invalid_lines``)
    and none is created. With ``audience_source`` the records come from a connector (those without a
    usable number are skipped and counted, never refused); if the source fails (no such list,
    refused credentials), no campaign is created. An audience given without a single recipient
    (``[]``, only invalid ones skipped, a source with nobody to send to) is refused with
    ``no_recipients`` and no campaign is created; leave ``audience`` out to create a draft and
    upload its audience later."""
    if body.audience and body.audience_source:
        raise PayloadError("give `audience` or `audience_source`, not both", field="audience_source")
    opened = _open(app, body.audience_source) if body.audience_source else None
    try:
        draft = app.campaigns.draft(body.name, body.template.model_dump(mode="json", exclude_none=True),
                                    window=body.window, rate_per_minute=body.rate_per_minute,
                                    business_phone_number_id=body.business_phone_number_id,
                                    marketing_api=body.marketing_api)
    except (PayloadError, ValueError) as exc:
        if opened is not None:
            opened.reader.close()
        if isinstance(exc, PayloadError):  # e.g. marketing_api use where the account has no such API
            raise
        raise PayloadError(str(exc), field="window") from None
    audience: Any = opened  # None: a draft whose audience is uploaded later (PUT .../audience)
    if opened is None and "audience" in body.model_fields_set:
        audience = read_items((item.model_dump() for item in body.audience), app.secret, body.country)
    try:  # the audience is loaded before the campaign is written: refused, nothing was
        made, loaded = app.campaigns.save(draft, audience, skip_invalid=body.skip_invalid)
    except InvalidLines as exc:
        return _invalid_lines(exc, "no campaign was created")
    except NoRecipients as exc:
        raise _refused(exc, "audience_source" if opened is not None else "audience",
                       "no campaign was created") from None
    return CreatedCampaign(campaign=made, audience=AudienceOut.of(loaded))


@router.put("/{campaign}/audience/source", response_model=AudienceOut,
            summary="Replace the audience with the records of a connector's source",
            responses=_errors((409, "The campaign is no longer a draft or scheduled"),
                              (415, "Body is not application/json"),
                              (422, "Invalid input, or a source with nobody to send to (`no_recipients`): the "
                                    "audience is left as it was")))
def put_audience_source(app: Engine, campaign: CampaignRef, body: AudienceSource) -> AudienceOut:
    """E.g. ``{"source": "hubspot_list", "id": "123", "params_from": {"first_name": "firstname"}}``.
    The source is read first: when it fails (no such list, refused credentials) or gives nobody to
    send to (``no_recipients``), the audience is left as it was."""
    campaign_id = _resolve(app, campaign)
    try:
        return AudienceOut.of(app.campaigns.load_source(campaign_id, _open(app, body)))
    except NoRecipients as exc:
        raise _refused(exc, body.source, app.campaigns.kept_audience(campaign_id)) from None


@router.put("/{campaign}/audience", response_model=AudienceOut, summary="Replace the audience with an uploaded file",
            openapi_extra={"requestBody": {"required": True, "content": {
                "text/csv": {"schema": {"type": "string"}}, "application/x-ndjson": {"schema": {"type": "string"}}}}},
            responses=_errors((409, "The campaign is no longer a draft or scheduled"),
                              (415, "Body is not text/csv or application/x-ndjson")) | AUDIENCE_REFUSED)
async def put_audience(request: Request, app: Engine, campaign: CampaignRef,
                       country: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
                       skip_invalid: bool = False) -> AudienceOut | JSONResponse:
    """A CSV file (``phone``, optional ``country``, one column per body parameter) or JSON lines
    (``{"phone": ..., "country": ..., "params": ...}``), checked line by line. A file with invalid
    lines is refused with ``invalid_lines`` (each listed) unless ``skip_invalid``; one without a
    single recipient (a header only, only invalid lines skipped) with ``no_recipients``. Refused,
    the audience is left as it was."""
    kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    fmt = {"text/csv": "csv", "application/x-ndjson": "jsonl", "application/jsonl": "jsonl"}.get(kind)
    if fmt is None:
        raise HTTPException(415, "send the audience as text/csv or application/x-ndjson")
    data = await request.body()
    campaign_id = await run_in_threadpool(_resolve, app, campaign)

    def load() -> AudienceResult:
        text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", errors="strict", newline="")
        try:
            return app.campaigns.load_audience(campaign_id, read_file(text, fmt, app.secret, country),
                                               skip_invalid=skip_invalid)
        except (BadAudience, UnicodeDecodeError) as exc:
            raise PayloadError(f"audience: {exc}") from None
        except NoRecipients as exc:
            raise _refused(exc, "audience", app.campaigns.kept_audience(campaign_id)) from None

    try:
        loaded = await run_in_threadpool(load)
    except InvalidLines as exc:  # nothing of the file was kept: the audience is as it was
        kept = await run_in_threadpool(app.campaigns.kept_audience, campaign_id)
        return _invalid_lines(exc, kept)
    return AudienceOut.of(loaded)


@router.get("", response_model=list[CampaignView], summary="Campaigns, newest first", responses=_errors())
def list_campaigns(app: Engine, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[CampaignView]:
    return app.campaigns.listing(limit)


@router.get("/{campaign}", response_model=CampaignView, responses=_errors(),
            summary="One campaign: state, counts per outcome, what it waits for")
def get_campaign(app: Engine, campaign: CampaignRef) -> CampaignView:
    return app.campaigns.get(_resolve(app, campaign))


@router.get("/{campaign}/preview", response_model=PreviewOut, summary="Who can be reached now, and why not the others",
            responses=_errors())
def preview_campaign(app: Engine, campaign: CampaignRef) -> PreviewOut:
    """The send gate's own checks over every recipient still to be sent to; nothing is written."""
    return PreviewOut.of(app.campaigns.preview(_resolve(app, campaign)))


WithinHours = Annotated[float, Query(gt=0, le=24 * 365, description="Hours from the send within which a delivery, "
                                                                    "read or reply counts for the `*_within` rates.")]


@router.get("/{campaign}/report", response_model=CampaignReport, responses=_errors(),
            summary="Counts, rates, failures by code, refusals by reason, pricing, cost")
def campaign_report(app: Engine, campaign: CampaignRef, within_hours: WithinHours = 24.0) -> CampaignReport:
    return app.campaigns.report(_resolve(app, campaign), within_hours=within_hours)


@router.get("/{campaign}/report.csv", summary="The report as one CSV table: outcomes with their cost, rates, "
                                              "failures by code, refusals by reason, total",
            response_class=StreamingResponse, responses={
                200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV with a header"},
                **_errors()})
def campaign_report_csv(app: Engine, campaign: CampaignRef, within_hours: WithinHours = 24.0
                        ) -> StreamingResponse:
    campaign_id = _resolve(app, campaign)
    text = report_csv(app.campaigns.report(campaign_id, within_hours=within_hours))
    return StreamingResponse(iter([text]), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{campaign_id}-report.csv"'})


class MarketingApiChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    marketing_api: MarketingApi = Field(
        description="Send its marketing template through Meta's Marketing Messages API (use), the Cloud API "
                    "(avoid), or as the number's account is configured (account). use is refused when that "
                    "account has no Marketing Messages API configured.")


@router.put("/{campaign}/marketing_api", response_model=CampaignView,
            summary="Change how its marketing template goes out (draft, scheduled or paused)",
            responses=_errors((409, "The campaign is running or has ended"),
                              (415, "Body is not application/json")))
def put_marketing_api(app: Engine, campaign: CampaignRef, body: MarketingApiChange) -> CampaignView:
    return app.campaigns.set_marketing_api(_resolve(app, campaign), body.marketing_api)


@router.post("/{campaign}/start", response_model=CampaignView, summary="Start now, or schedule",
             responses=_errors((409, "The campaign's state does not allow it")))
def start_campaign(app: Engine, campaign: CampaignRef,
                   at: Annotated[IsoTime | None, Query(description="Start then (ISO 8601) instead of now: the "
                                                                   "campaign is scheduled.")] = None) -> CampaignView:
    return app.campaigns.start(_resolve(app, campaign), at)


@router.post("/{campaign}/{action}", response_model=CampaignView, summary="Pause, resume or cancel",
             responses=_errors((409, "The campaign's state does not allow it")))
def control_campaign(app: Engine, campaign: CampaignRef,
                     action: Annotated[Literal["pause", "resume", "cancel"], Path()]) -> CampaignView:
    return app.campaigns.control(_resolve(app, campaign), Action(action))


@router.get("/{campaign}/results", response_model=ResultPage, summary="Each recipient's outcome, in audience order",
            responses=_errors())
def campaign_results(app: Engine, campaign: CampaignRef,
                     after: Annotated[int, Query(ge=0, le=2**31 - 1, description="`next_cursor` of the previous page.")]
                     = 0, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> ResultPage:
    rows = app.campaigns.results(_resolve(app, campaign), after_line=after, limit=limit)
    return ResultPage(results=[ResultOut.model_validate(r) for r in rows],
                      next_cursor=rows[-1]["line"] if len(rows) == limit else None)


@router.get("/{campaign}/results.csv", summary="Every recipient's outcome as CSV (masked numbers)",
            response_class=StreamingResponse, responses={
                200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV with a header"},
                **_errors()})
def campaign_results_csv(app: Engine, campaign: CampaignRef) -> StreamingResponse:
    campaign_id = _resolve(app, campaign)
    return StreamingResponse(results_csv(app.campaigns.all_results(campaign_id)), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{campaign_id}-results.csv"'})
