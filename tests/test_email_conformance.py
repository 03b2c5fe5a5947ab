"""The connector conformance suite, run against the email connector's bounce webhook (Postmark,
HTTP Basic credentials in the webhook URL)."""

from __future__ import annotations

from pathlib import Path

import connectzap.connectors.email as email_plugin
from connectzap.connectors.email import EmailConnector
from connectzap.testing import Sample, Signer, connector_test_class

PAYLOADS = Path(__file__).parent / "payloads" / "postmark"
USER = "postmark-hooks"
PASSWORD = "hook-pass-3e1d"
STATUS = ("message_status",)

BASIC_AUTH = Signer.basic_auth(USER)

TestEmailConformance = connector_test_class(
    EmailConnector,
    config={"host": "smtp.shop.example", "username": "shop", "password": "smtp-secret-conformance",
            "from_address": "shop@shop.example", "webhook_username": USER, "webhook_passwords": [PASSWORD]},
    signer=BASIC_AUTH,
    secret_field="webhook_passwords",
    plugins=[email_plugin],
    payloads=[
        Sample.from_file(PAYLOADS / "bounce_hard.json", expect_kinds=STATUS, expect_sends=0),
        Sample.from_file(PAYLOADS / "delivery.json", expect_kinds=STATUS, expect_sends=0),
        Sample.from_file(PAYLOADS / "bounce_soft.json", expect_kinds=(), expect_sends=0),
        # a complaint: the message was delivered, then its contact opted out of marketing on email
        Sample.from_file(PAYLOADS / "spam_complaint.json", expect_kinds=STATUS * 2, expect_sends=0),
        Sample(name="no_record_type", body={"ID": 1, "Type": "HardBounce"}, expect="error", error_field="RecordType"),
        Sample(name="bounce_without_id", body={"RecordType": "Bounce", "Type": "HardBounce"}, expect="error",
               error_field="ID"),
        Sample(name="bounce_bad_time", body={"RecordType": "Bounce", "ID": 7, "Type": "HardBounce",
                                             "Metadata": {"connectzap_outbox": "m9"}, "BouncedAt": "yesterday"},
               expect="error", error_field="BouncedAt"),
    ],
)
