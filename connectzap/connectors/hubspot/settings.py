"""``[connectors.hubspot]``: the private app token, webhook secrets, which events make a lead,
where phone numbers and consent live on the contact, and the API limits to respect.

Fail closed: an enabled connector needs ``access_token`` and at least one way to authenticate
webhooks (``client_secrets`` for app webhooks or signed workflow webhooks, ``workflow_secrets``
for workflow webhooks that carry a shared secret); otherwise it does not start.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ...core.models import Category
from ..base import ConnectorSettings

LegalBasis = Literal["LEGITIMATE_INTEREST_PQL", "LEGITIMATE_INTEREST_CLIENT", "PERFORMANCE_OF_CONTRACT",
                     "CONSENT_WITH_NOTICE", "NON_GDPR", "PROCESS_AND_STORE", "LEGITIMATE_INTEREST_OTHER"]
"""HubSpot's ``legalBasis`` vocabulary (subscription preferences API)."""

SignatureVersion = Literal["v1", "v2", "v3"]

# Typed defaults: a bare list literal in a default_factory lambda reads as list[str] to mypy.
_OPT_IN_BASES: tuple[LegalBasis, ...] = ("CONSENT_WITH_NOTICE", "NON_GDPR")
_SIGNATURE_VERSIONS: tuple[SignatureVersion, ...] = ("v3", "v2", "v1")


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConsentProperty(_Part):
    """A contact property that holds WhatsApp opt-in for one category.

    Read as an opt-in source when a contact is fetched; written back (``mirror``) when consent
    changes in connectzap, whose ledger stays the source of truth.
    """

    property: str
    granted_values: list[str] = Field(default_factory=lambda: ["granted", "true", "yes", "subscribed"])
    """Values that mean "opted in" (case-insensitive). The first one is written when mirroring a grant."""
    revoked_values: list[str] = Field(default_factory=lambda: ["revoked", "false", "no", "unsubscribed"])
    """Values that mean "opted out". The first one is written when mirroring a revocation."""
    legal_basis_property: str | None = None
    """Optional property with the legal basis, in HubSpot's vocabulary (e.g. CONSENT_WITH_NOTICE)."""
    opt_in_legal_bases: list[LegalBasis] = Field(default_factory=lambda: list(_OPT_IN_BASES))
    """With ``legal_basis_property`` set, a "granted" value counts only with one of these bases."""
    legal_basis_on_grant: LegalBasis = "CONSENT_WITH_NOTICE"
    """Written to ``legal_basis_property`` when a grant is mirrored."""
    at_property: str | None = None
    """Optional property that receives the time of the last mirrored change (ISO 8601)."""
    source_property: str | None = None
    """Optional property that receives where the last mirrored change came from (e.g. whatsapp:keyword)."""
    mirror: bool = True


class WorkflowSend(_Part):
    """A "Send WhatsApp" workflow action: the approved template a workflow webhook with
    ``?send=NAME`` sends the enrolled contact, through the send gate like every message (the
    template's own category decides which consent the contact needs)."""

    template: str = Field(min_length=1, max_length=512)
    language: str = Field(default="en", min_length=2, max_length=15)
    params: list[str] = Field(default_factory=list, max_length=20)
    """Property names filling ``{{1}}``, ``{{2}}``, ...: a field of a customised workflow body (where
    a deal's or company's properties can be put), else the contact's property of that name."""


class LeadTrigger(_Part):
    """A ``contact.propertyChange`` that makes a lead, e.g. lifecyclestage becoming ``lead``."""

    property: str
    values: list[str] = Field(default_factory=list)
    """Values that trigger (case-insensitive); empty means any change of the property."""

    def matches(self, name: str | None, value: object) -> bool:
        if name != self.property:
            return False
        return not self.values or str(value or "").casefold() in {v.casefold() for v in self.values}


class HubSpotSettings(ConnectorSettings):
    access_token: SecretStr | None = None
    """Private app access token (pat-...)."""
    client_secrets: list[SecretStr] = Field(default_factory=list)
    """The app's client secret(s) for X-HubSpot-Signature(-v3); list the new one first while rotating."""
    workflow_secrets: list[SecretStr] = Field(default_factory=list)
    """Shared secret(s) a workflow "Send a webhook" action sends as its API key."""
    workflow_key_name: str = "X-Connectzap-Secret"
    """The API key name configured in the workflow action."""
    workflow_key_location: Literal["header", "query"] = "header"
    signature_versions: list[SignatureVersion] = Field(default_factory=lambda: list(_SIGNATURE_VERSIONS))
    """Signature versions accepted. v1/v2 carry no timestamp (no replay protection); drop them if you can."""
    signature_tolerance_seconds: float = Field(default=300, gt=0)
    portal_id: str | None = None
    """Your HubSpot account id; used for workflow deliveries that do not carry one."""

    api_base_url: str = "https://api.hubapi.com"
    timeout_seconds: float = Field(default=10.0, gt=0)
    requests_per_10_seconds: int = Field(default=100, ge=1)
    """Burst budget of the private app (100 on Free/Starter, 190 on Professional/Enterprise)."""
    search_requests_per_second: float = Field(default=4.0, gt=0)
    max_inline_retries: int = Field(default=2, ge=0)
    """Retries inside one delivery for short waits; longer waits reschedule the delivery."""
    inline_retry_max_seconds: float = Field(default=1.0, ge=0)
    daily_limit_retry_seconds: float = Field(default=3600.0, gt=0)
    """When HubSpot reports the DAILY limit, come back after this long."""

    lead_on_creation: bool = True
    """``contact.creation`` makes a lead."""
    lead_triggers: list[LeadTrigger] = Field(
        default_factory=lambda: [LeadTrigger(property="lifecyclestage", values=["lead"])])
    phone_properties: list[str] = Field(default_factory=lambda: ["hs_whatsapp_phone_number", "mobilephone", "phone"])
    """Where the WhatsApp number may be, in order of preference; all are searched for inbound senders."""
    country_property: str | None = None
    """A contact property holding an ISO country code, for numbers written without one."""
    default_region: str | None = None
    """ISO country for national numbers when the contact has none (else ``phones.default_region``)."""
    lead_properties: list[str] = Field(default_factory=lambda: [
        "firstname", "lastname", "email", "company", "lifecyclestage", "hubspot_owner_id", "createdate"])
    """Properties fetched for a lead (phone and consent properties are always added)."""
    consent: dict[Category, ConsentProperty] = Field(default_factory=dict)
    """Per category (marketing, utility, authentication): the property that holds opt-in."""

    timeline: bool = True
    """Log inbound and outbound WhatsApp messages on the contact's timeline."""
    campaign_timeline: bool = False
    """Also log each recipient's outcome of a campaign to a HubSpot list as a Note on the contact."""
    timeline_object: Literal["communication", "note"] = "communication"
    """Communications need them on the portal; a 403 switches to notes automatically."""
    create_contacts: bool = False
    """Create a contact for an unknown number (inbound message, outbound send, consent change)."""
    new_contact_phone_property: str = "mobilephone"
    """Where a created contact's number goes."""
    workflow_sends: dict[str, WorkflowSend] = Field(default_factory=dict)
    """Named "Send WhatsApp" workflow actions (``POST /webhooks/hubspot?send=NAME``)."""
    agent_replies: bool = False
    """Send a note written on a contact that starts with ``agent_reply_prefix`` to the contact on
    WhatsApp (needs the app's webhook subscription to note creation)."""
    agent_reply_prefix: str = Field(default="WhatsApp:", min_length=1, max_length=40)
    """What a note starts with to be sent (case-insensitive); the text after it is the reply."""
    agent_reply_template: str | None = Field(default=None, min_length=1, max_length=512)
    """The approved template sent instead of a reply when the customer's 24-hour window is closed;
    unset: ``[replies] fallback_template`` (which a shop may word for orders)."""
    agent_reply_language: str = Field(default="en", min_length=2, max_length=15)
    """The language of ``agent_reply_template``."""
    agent_reply_params: list[str] = Field(default_factory=list, max_length=20)
    """Contact properties filling that template's ``{{1}}``, ``{{2}}``, ..."""
    bsuid_property: str = Field(default="whatsapp_bsuid", min_length=1, max_length=100)
    """A contact property holding the customer's WhatsApp business-scoped user id (BSUID): how a
    customer who hides their number (a username) is matched. Created (a text property) the first
    time it is needed; written on contacts found by number when the BSUID is known too."""
    ad_source_property: str | None = Field(default="whatsapp_ad_source", max_length=100)
    """A contact property that receives the Click-to-WhatsApp ad a customer came from (ad id,
    headline, link, ``ctwa_clid``) when their message follows a tap on the ad: the lead's source.
    Created (a text property) the first time it is needed; empty ("") or unset: not written."""
    owner_id: str | None = None
    """hubspot_owner_id for timeline entries; default: the contact's owner (``use_contact_owner``)."""
    use_contact_owner: bool = True
    search_index_lag_seconds: float = Field(default=15.0, ge=0)
    """How long HubSpot's search index may lag a create: a retry after an interrupted create waits this
    long before searching for what it may have created."""

    @field_validator("default_region")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value

    @model_validator(mode="after")
    def _fail_closed(self) -> HubSpotSettings:
        if not self.enabled:
            return self
        missing = []
        if self.access_token is None or not self.access_token.get_secret_value():
            missing.append("access_token (a private app token)")
        if not any(s.get_secret_value() for s in [*self.client_secrets, *self.workflow_secrets]):
            missing.append("client_secrets (app webhooks) or workflow_secrets (workflow webhooks)")
        if missing:
            raise ValueError("set " + " and ".join(missing))
        return self

    def fetched_properties(self) -> list[str]:
        """Every contact property the connector reads, without repeats."""
        names = [*self.lead_properties, *self.phone_properties, "hubspot_owner_id"]
        if self.country_property:
            names.append(self.country_property)
        for rule in self.consent.values():
            names.extend(p for p in (rule.property, rule.legal_basis_property) if p)
        for send in self.workflow_sends.values():
            names.extend(send.params)
        if self.agent_replies:
            names.extend([*self.agent_reply_params, self.bsuid_property])
        return list(dict.fromkeys(names))
