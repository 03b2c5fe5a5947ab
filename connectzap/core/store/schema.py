"""Table definitions (SQLAlchemy Core). Change them only together with an Alembic migration.

Times are float seconds since the epoch (UTC): portable, sortable, cheap to compare. Columns
that may hold personal data (``payload``, ``content``, ``recipient``) are nullable because they
are erased once their row is finished; contacts are otherwise identified by a keyed hash.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, Float, Index, Integer, MetaData, PrimaryKeyConstraint, String,
                        Table, Text, UniqueConstraint, text)

metadata = MetaData()

CHANGED_SINCE_ADMITTED = "status <> 'queued' OR updated_at > created_at"
"""An outbox row some step after its insert changed: its status left ``queued``, or it was
stamped again (queued once more later). The predicate of ``ix_outbox_cancel_changed``."""

CONTACT_INDEXED = "status <> 'queued' OR plugin IS NULL OR plugin NOT LIKE 'campaign:%'"
"""The outbox rows ``ix_outbox_contact`` holds: all but a campaign's messages still waiting in the
queue (at most a round or two a running campaign; its recipients' rows find them). A contact key is
a keyed hash, random by design, so every entry lands on a page of its own: at a million recipients
that index was most of what admission wrote (docs/campaigns.md, "The contact index"). A campaign's
message enters it when it leaves the queue -- at the pace it is sent. Queries by contact go through
:func:`.outbox.of_contacts`, which repeats this predicate so that the database can use the index."""

Id = BigInteger().with_variant(Integer, "sqlite")  # SQLite only autoincrements INTEGER PRIMARY KEY


def Key(length: int) -> String:
    """A key column's type: ASCII ids, keyed hashes and status codes, which the database compares byte
    by byte. PostgreSQL compares text by the database's collation (``C.UTF-8``, ``en_US.UTF-8``), through
    the C library's ``strcoll`` at every step of an index descent, except under ``"C"``; nobody reads
    these in a human's order, so they are declared ``COLLATE "C"`` there (migration 0031): the columns
    admission and the sender compare per message, and those joined to them (a recipient's window), so
    that a join's comparison keeps the collation of both sides' indexes. SQLite's default
    (``BINARY``) is byte order already: its DDL is unchanged."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


events = Table(
    "events", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("dedupe_key", String(255), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=True),
    Column("status", String(16), nullable=False),  # pending | done | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", Float, nullable=True),
    Column("received_at", Float, nullable=False),
    Column("completed_at", Float, nullable=True),
    Column("erase_after", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("ordering_key", String(32), nullable=True),  # keyed hash of Event.ordering_key
    UniqueConstraint("source", "dedupe_key", name="uq_events_source_dedupe"),
    Index("ix_events_due", "status", "next_attempt_at"),
    Index("ix_events_received", "received_at"),  # the console's throughput: events of the last minutes
    # Claims ask "is an older event of this key still pending?": only pending rows matter.
    Index("ix_events_ordering", "ordering_key", "id", postgresql_where=text("status = 'pending'"),
          sqlite_where=text("status = 'pending'")),
    # Housekeeping erases expired payloads every few seconds: only rows still to erase are indexed.
    Index("ix_events_erase", "erase_after", postgresql_where=text("erase_after IS NOT NULL"),
          sqlite_where=text("erase_after IS NOT NULL")),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", BigInteger, nullable=False),
    Column("target", String(128), nullable=False),  # a plugin name or connector:<name>
    Column("status", String(16), nullable=False),  # pending | done | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("result", Text, nullable=True),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("event_id", "target", name="uq_deliveries_event_target"),
    Index("ix_deliveries_status", "status"),
)

outbox = Table(
    "outbox", metadata,
    Column("id", Key(32), primary_key=True),
    Column("idempotency_key", Key(255), nullable=False, unique=True),
    Column("request_hash", String(64), nullable=False),
    Column("contact_key", Key(32), nullable=False),
    Column("recipient", String(160), nullable=True),  # E.164, or a BSUID (up to 131 characters)
    Column("category", String(16), nullable=False),
    Column("content_type", String(16), nullable=False),
    Column("template_name", String(512), nullable=True),
    Column("language", String(16), nullable=True),
    Column("content", Text, nullable=True),
    Column("status", Key(16), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("error_code", String(32), nullable=True),
    Column("error_details", Text, nullable=True),
    Column("fbtrace_id", String(64), nullable=True),
    Column("wamid", String(191), nullable=True),
    Column("not_before", Float, nullable=True),
    Column("next_attempt_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", Float, nullable=True),
    Column("handed_off_at", Float, nullable=True),  # set right before the channel got the request
    Column("unknown_since", Float, nullable=True),  # when it became unknown: the settle grace counts from here
    Column("cancel_key", Key(255), nullable=True),
    Column("business_phone_number_id", String(64), nullable=True),
    Column("source_event_id", BigInteger, nullable=True),
    Column("plugin", String(128), nullable=True),
    Column("origin", Text, nullable=True),  # JSON ids of what the message is about; kept after erasure
    Column("automatic", String(16), nullable=True),  # an AutomaticAnswer kind: arbitrated per inbound message
    Column("medium", String(16), nullable=False, server_default="whatsapp"),  # whose channel sends it
    Column("fallback_of", String(32), nullable=True),  # the message this one stands in for (a fallback)
    Column("segments", Integer, nullable=True),  # what an SMS cost: its GSM-7/UCS-2 segments (migration 0026)
    # per-message pricing from the latest status that carried it (kept after erasure: no personal data)
    Column("pricing_category", String(48), nullable=True),
    Column("pricing_type", String(48), nullable=True),
    Column("billable", Boolean, nullable=True),
    # when Meta first reported each status (the status webhook's timestamp); kept after erasure
    Column("sent_at", Float, nullable=True),
    Column("delivered_at", Float, nullable=True),
    Column("read_at", Float, nullable=True),  # read, or played (voice)
    Column("failed_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("erase_after", Float, nullable=True),
    Index("ix_outbox_due", "status", "next_attempt_at"),
    Index("ix_outbox_created", "created_at"),  # messages of the last minutes / 24 hours (console, counts)
    # Only messages that have one: a message has no wamid until the channel accepts it, and most
    # have no source event (campaigns, API sends); every lookup asks for given values.
    Index("ix_outbox_wamid", "wamid", postgresql_where=text("wamid IS NOT NULL"),
          sqlite_where=text("wamid IS NOT NULL")),
    Index("ix_outbox_cancel", "cancel_key"),
    # A campaign's messages changed since they were admitted (what its outcomes follow): admission's
    # own rows are left out, so following costs the changes, not the admissions.
    Index("ix_outbox_cancel_changed", "cancel_key", "updated_at", postgresql_where=text(CHANGED_SINCE_ADMITTED),
          sqlite_where=text(CHANGED_SINCE_ADMITTED)),
    Index("ix_outbox_contact", "contact_key", postgresql_where=text(CONTACT_INDEXED),
          sqlite_where=text(CONTACT_INDEXED)),
    Index("ix_outbox_event", "source_event_id", postgresql_where=text("source_event_id IS NOT NULL"),
          sqlite_where=text("source_event_id IS NOT NULL")),
    # a message's fallbacks (the console links them both ways); only fallbacks are in it
    Index("ix_outbox_fallback_of", "fallback_of", postgresql_where=text("fallback_of IS NOT NULL"),
          sqlite_where=text("fallback_of IS NOT NULL")),
    Index("ix_outbox_erase", "erase_after", postgresql_where=text("erase_after IS NOT NULL"),
          sqlite_where=text("erase_after IS NOT NULL")),
)

consents = Table(
    "consents", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contact_key", Key(32), nullable=False),
    Column("category", Key(16), nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("source", String(128), nullable=False),
    Column("proof", Text, nullable=True),
    Column("at", Float, nullable=False),
    Column("recorded_at", Float, nullable=False),
    Column("medium", Key(16), nullable=False, server_default="whatsapp"),  # consent is per category and medium
    Index("ix_consents_contact", "contact_key", "category", "medium", "at"),
)

windows = Table(
    "windows", metadata,
    Column("contact_key", Key(32), primary_key=True),
    Column("business_phone_number_id", String(64), primary_key=True),
    Column("last_inbound_at", Float, nullable=False),
    Index("ix_windows_inbound", "last_inbound_at"),  # who wrote lately (a campaign's replies)
)

contacts = Table(
    "contacts", metadata,
    Column("contact_key", Key(32), primary_key=True),
    Column("unreachable_since", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
)

unreachable_media = Table(
    # Whether a medium other than WhatsApp can reach a contact (an email address that hard-bounced):
    # the newest failure saying it cannot and the newest delivery saying it can; the newer decides,
    # whatever order they arrive in. WhatsApp's own mark is contacts.unreachable_since.
    "unreachable_media", metadata,
    Column("contact_key", String(32), primary_key=True),
    Column("medium", String(16), primary_key=True),
    Column("failed_at", Float, nullable=True),
    Column("reached_at", Float, nullable=True),
)

identities = Table(
    # A business-scoped user id (BSUID) seen together with a phone number: the BSUID's keyed hash
    # points at the phone's. A BSUID with no row here is its own contact (its hash is the key).
    "identities", metadata,
    Column("identity_key", String(32), primary_key=True),
    Column("contact_key", String(32), nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_identities_contact", "contact_key"),
)

templates = Table(
    # One row per business account's template: ``waba_id`` '' is a template of no particular account
    # (added by hand or by a test), which any account's number may send (see :mod:`..templates`).
    "templates", metadata,
    Column("waba_id", String(64), primary_key=True),
    Column("name", String(512), primary_key=True),
    Column("language", String(16), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("category", String(32), nullable=False),
    Column("parameter_format", String(16), nullable=False),
    Column("components", Text, nullable=False),
    Column("template_id", String(64), nullable=True),
    Column("updated_at", Float, nullable=False),
    # a re-categorisation Meta announced (template_category_update): the category from that time on
    Column("pending_category", String(32), nullable=True),
    Column("category_effective_at", Float, nullable=True),
    # Meta's quality rating of the template (GREEN, YELLOW, RED, UNKNOWN); None until synced or updated
    Column("quality", String(16), nullable=True),
    # named as migration 0014 named it when it added waba_id to the key: what every migrated database has
    PrimaryKeyConstraint("waba_id", "name", "language", name="templates_account_pkey"),
)

conversations = Table(
    # Who answers a contact: a row only while people do (no row: the bot). Keyed by the keyed hash.
    "conversations", metadata,
    Column("contact_key", Key(32), primary_key=True),
    Column("handled_by", String(16), nullable=False),  # human
    Column("reason", String(255), nullable=False),
    Column("since", Float, nullable=False),
    Column("until", Float, nullable=True),  # NULL: until released
    Column("event_id", BigInteger, nullable=True),  # the event whose hook handed it over, if any
    Column("updated_at", Float, nullable=False),
)

automatic_answers = Table(
    # The one automatic answer an inbound message got (or the reason it got none): taken once, ever.
    "automatic_answers", metadata,
    Column("inbound_key", String(255), primary_key=True),
    Column("event_id", BigInteger, nullable=False),
    Column("message_id", String(32), nullable=True),
    Column("kind", String(16), nullable=True),
    Column("at", Float, nullable=False),
)

plugin_state = Table(
    "plugin_state", metadata,
    Column("plugin", String(128), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
    # When the housekeeping forgets the value (a plugin's record that is useless after a deadline).
    Column("forget_at", Float, nullable=True),
    Index("ix_plugin_state_forget", "forget_at", postgresql_where=text("forget_at IS NOT NULL"),
          sqlite_where=text("forget_at IS NOT NULL")),
    # Lookups by key alone (a customer's times, contact_times): the primary key starts with the plugin.
    Index("ix_plugin_state_key", "key"),
)

flags = Table(
    "flags", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=True),
    Column("updated_at", Float, nullable=False),
)

workers = Table(
    "workers", metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)

rate_counters = Table(
    "rate_counters", metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

campaigns = Table(
    # A broadcast of one template to an audience (connectzap.core.campaigns). The template holds no
    # personal data (each recipient's parameters live with the recipient, until it is settled).
    "campaigns", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("state", String(16), nullable=False),
    Column("template", Text, nullable=False),  # JSON: name, language, header, buttons, default body
    Column("business_phone_number_id", String(64), nullable=True),
    Column("starts_at", Float, nullable=True),
    Column("window_start", Integer, nullable=True),  # minutes after local midnight, in each recipient's zone
    Column("window_end", Integer, nullable=True),
    Column("rate_per_minute", Float, nullable=True),
    Column("next_slot_at", Float, nullable=True),  # the campaign rate's next free send time
    Column("waiting", Text, nullable=True),  # why nothing is admitted now, and until when
    Column("followed_until", Float, nullable=True),  # outcomes follow the messages' changes up to here
    # Every recipient still waiting to be admitted sorts after (cursor_due_at, cursor_line) in
    # admission order: each round starts its search there (connectzap.core.campaigns.engine).
    Column("cursor_due_at", Float, nullable=False, server_default="-1"),
    Column("cursor_line", Integer, nullable=False, server_default="-1"),
    # Every recipient waiting in the outbox sorts at or after (queued_from_due_at, queued_from_line):
    # the count of them starts there.
    Column("queued_from_due_at", Float, nullable=False, server_default="-1"),
    Column("queued_from_line", Integer, nullable=False, server_default="-1"),
    Column("audience_source", String(64), nullable=True),  # e.g. hubspot_list: whose records source_ref names
    Column("marketing_api", String(8), nullable=True),  # use | avoid; null: the number's account decides
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    Index("ix_campaigns_state", "state"),
)

campaign_recipients = Table(
    # One row per contact of a campaign's audience (deduplicated by contact). The number and the
    # template parameters are kept only until the recipient's message is settled (then erased);
    # the contact's keyed hash, the masked number and the outcome stay.
    "campaign_recipients", metadata,
    Column("campaign_id", Key(32), primary_key=True),
    Column("contact_key", Key(32), primary_key=True),
    Column("line", Integer, nullable=False),  # where it came from in the audience (admission order)
    Column("recipient", String(32), nullable=True),  # E.164; erased once settled
    Column("masked", String(32), nullable=False),
    Column("zones", String(255), nullable=True),  # IANA time zones of the number's region, space-separated
    Column("params", Text, nullable=True),  # JSON body parameters; erased once settled
    Column("outcome", Key(16), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("error_code", String(32), nullable=True),
    Column("error_title", Text, nullable=True),
    Column("message_id", Key(32), nullable=True),
    Column("message_status", String(16), nullable=True),  # the message's status when last looked at
    Column("attempt", Integer, nullable=False, default=0),  # admissions so far: part of the idempotency key
    Column("backoffs", Integer, nullable=False, default=0),  # times the per-user marketing limit deferred it
    Column("due_at", Float, nullable=False),  # not admitted before (quiet hours, a per-user limit's backoff)
    Column("admitted_at", Float, nullable=True),
    Column("replied_at", Float, nullable=True),  # the customer's first message after the send
    Column("country", String(2), nullable=True),  # ISO 3166 of the number: the market its price is looked up in
    Column("updated_at", Float, nullable=False),
    # The record's id in the audience's source (a CRM contact id; no number), for the write-back.
    Column("source_ref", String(128), nullable=True),
    Index("ix_campaign_recipients_due", "campaign_id", "outcome", "due_at", "line"),
    Index("ix_campaign_recipients_message", "message_id"),
)

# The operator console: who may log in, who is logged in (by a hash of the cookie's token) and what
# they did. No password, token or customer number is stored in the clear.
console_users = Table(
    "console_users", metadata,
    Column("name", String(64), primary_key=True),
    Column("password_hash", String(255), nullable=False),  # argon2id, with its own salt and parameters
    Column("created_at", Float, nullable=False),
)

console_sessions = Table(
    "console_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("actor", String(80), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

console_audit = Table(
    "console_audit", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(80), nullable=False),
    Column("action", String(48), nullable=False),
    Column("target", String(255), nullable=True),
    Column("detail", Text, nullable=True),
    Column("address", String(64), nullable=True),
    Index("ix_console_audit_action", "action", "at"),
)
