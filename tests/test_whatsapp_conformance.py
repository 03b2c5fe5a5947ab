"""The connector conformance suite, run against the WhatsApp connector (webhooks signed by Meta)."""

from __future__ import annotations

from pathlib import Path

from connectzap.connectors.whatsapp import WhatsAppConnector
from connectzap.testing import Sample, Signer, connector_test_class, payload_bytes

PAYLOADS = Path(__file__).parent / "payloads" / "whatsapp"
APP_SECRET = "conformance-app-secret-0123456789"


def shipped(name: str, *kinds: str) -> Sample:
    """A payload shipped in connectzap.testing (the canonical set plugin authors get)."""
    return Sample(name=f"shipped_{name}", body=payload_bytes(f"whatsapp/{name}"), expect_kinds=kinds)


def recorded(name: str, *kinds: str, **options: object) -> Sample:
    """A payload from tests/payloads/whatsapp (one per message type, status and field)."""
    return Sample.from_file(PAYLOADS / f"{name}.json", expect_kinds=kinds, **options)


TestWhatsAppConformance = connector_test_class(
    WhatsAppConnector,
    config={"app_secrets": [APP_SECRET], "verify_token": "conformance-verify-token"},
    signer=Signer.meta(),
    secret_field="app_secrets",
    payloads=[
        shipped("message_text", "inbound_message"),
        shipped("message_button", "inbound_message"),
        shipped("message_interactive_button_reply", "inbound_message"),
        shipped("status_sent", "message_status"),
        shipped("status_delivered", "message_status"),
        shipped("status_failed", "message_status"),
        shipped("template_status_rejected", "template_update"),
        shipped("user_preferences_stop", "consent_changed"),
        recorded("image", "inbound_message"),
        recorded("location", "inbound_message"),
        recorded("reaction", "inbound_message"),
        recorded("status_read", "message_status"),
        Sample(name="not_whatsapp", body={"object": "page", "entry": []}, expect="error", error_field="object"),
        Sample(name="entry_not_a_list", body={"object": "whatsapp_business_account", "entry": "x"}, expect="error",
               error_field="entry"),
    ],
)
