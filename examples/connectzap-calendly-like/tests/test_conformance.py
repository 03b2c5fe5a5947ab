"""The connectzap conformance suite, run against this connector: one call generates every standard test."""

from pathlib import Path

import connectzap_calendly_like
from connectzap import TemplateInfo
from connectzap.testing import Sample, Signer, connector_test_class
from connectzap_calendly_like import BookingConnector

PAYLOADS = Path(__file__).parent / "payloads"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # a test-only Standard Webhooks key

TEMPLATES = [
    TemplateInfo(name="appointment_confirmed", language="en", category="UTILITY",
                 components=[{"type": "BODY", "text": "Hi {{1}}, your {{2}} is booked for {{3}}."}]),
    TemplateInfo(name="appointment_reminder", language="en", category="UTILITY",
                 components=[{"type": "BODY", "text": "Hi {{1}}, a reminder: {{2}} on {{3}}."}]),
]


def sample(name: str, **expected: object) -> Sample:
    return Sample.from_file(PAYLOADS / f"{name}.json", **expected)


TestBookingConnector = connector_test_class(
    BookingConnector,
    config={"signing_secrets": [SECRET]},
    signer=Signer.standard_webhooks(),
    plugins=[connectzap_calendly_like],
    templates=TEMPLATES,
    payloads=[
        sample("invitee_created", expect_kinds=["send", "send"], expect_sends=1),
        sample("invitee_created_no_consent", expect_kinds=["send", "send"], expect_sends=0),
        sample("invitee_created_no_number", expect_kinds=[]),
        sample("invitee_canceled", expect_kinds=["cancel"]),
        sample("routing_form_submission", expect_kinds=[]),
        sample("invitee_created_bad_number", expect="error", error_field="payload.text_reminder_number"),
        sample("invitee_created_without_uri", expect="error", error_field="payload.uri"),
        sample("invitee_created_bad_start_time", expect="error", error_field="payload.scheduled_event.start_time"),
    ],
)
