"""The connector conformance suite for the SMS connector (Twilio webhooks, X-Twilio-Signature).

Samples are form bodies shaped like Twilio's status callbacks and inbound texts (Twilio's Messaging
webhook reference); the suite signs each for the URL it is posted to, as Twilio does.
"""

from __future__ import annotations

from urllib.parse import urlencode

from sms_support import inbound_params, settings, status_params

from connectzap.connectors.sms import SmsConnector
from connectzap.testing import Sample, Signer, connector_test_class

FORM = {"content-type": "application/x-www-form-urlencoded"}
SID = "SM" + "b" * 32


def form(name: str, params: dict[str, str], **options: object) -> Sample:
    return Sample(name=name, body=urlencode(params), headers=FORM, **options)  # type: ignore[arg-type]


TestSmsConformance = connector_test_class(
    SmsConnector, config=settings(), signer=Signer.twilio(), secret_field="auth_token",
    payloads=[
        form("delivered", status_params(SID, "delivered"), query={"outbox": "ob-1"}, expect_kinds=("message_status",)),
        form("undelivered", status_params(SID, "undelivered", error_code="30003"), expect_kinds=("message_status",)),
        form("stop", inbound_params("STOP", sid="SM" + "c" * 32), expect_kinds=("consent_changed",) * 3),
        form("hello", inbound_params("hello", sid="SM" + "d" * 32), expect_kinds=("inbound_message",)),
        form("unknown_status", status_params(SID, "exploded"), expect="error", error_field="MessageStatus"),
        form("other_account", {**status_params(SID, "sent"), "AccountSid": "AC" + "e" * 32}, expect="error",
             error_field="AccountSid"),
    ])
