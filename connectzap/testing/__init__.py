"""Test helpers for connectzap and its plugins, shipped in the wheel.

* Engines: ``make_app`` builds one on a temporary SQLite file (or ``CONNECTZAP_TEST_DATABASE_URL``);
  :func:`run` drives its workers synchronously until idle; ``seed_template`` fills the template cache.
* :class:`FakeWhatsApp` records every Cloud API request body and fails on demand;
  :class:`FakeChannel` does the same for any other medium (email, sms).
* :class:`FakeBot` stands in for the bot behind the chatbot bridge (answers, slow, errors, garbage).
* ``*_headers`` functions and :class:`Signer` sign requests for every supported scheme.
* ``load_payload`` / ``sample_event`` give canonical WhatsApp webhooks and one event per kind.
* :func:`registered_plugin` registers a plugin for the length of a ``with`` block; :func:`recording`
  registers one that records what the named event hooks receive.
* :func:`connector_test_class` generates the connector conformance suite.

The conformance suite needs pytest (``pip install 'connectzap[test]'``); it is imported on first use,
so the rest -- e.g. ``python -m connectzap.testing.fake_graph`` -- works on a plain install.

The pytest plugin (loaded automatically) adds the fixtures ``connectzap_app``, ``fake_whatsapp``,
``connectzap_factory`` and ``register_plugin``, and keeps installed plugins from loading under test.
"""

from .apps import make_app, run, seed_template
from .fake_bot import BotRequest, FakeBot
from .fakes import FAILURES, FakeChannel, FakeWhatsApp, delivery_error
from .harness import ConnectorSpec, Harness, deliver, open_harness, put_templates
from .payloads import load_payload, payload_bytes, payload_names, sample_event
from .plugins import ConnectorRegistration, registered_plugin
from .recording import HookRecorder, recording
from .samples import Sample, samples_from_dir
from .signing import (Signer, as_body, basic_auth_headers, hmac_headers, hubspot_v1_headers, hubspot_v2_headers,
                      hubspot_v3_headers, meta_headers, shared_secret_headers, standard_webhooks_headers,
                      webhook_request, woocommerce_headers)

__all__ = [
    "FAILURES", "SUITES", "BotRequest", "ConformanceBase", "ConnectorRegistration", "ConnectorSpec", "FakeBot",
    "FakeChannel", "FakeWhatsApp", "Harness",
    "HookRecorder",
    "Sample", "Signer", "as_body", "basic_auth_headers", "connector_test_class", "deliver", "delivery_error",
    "hmac_headers",
    "hubspot_v1_headers", "hubspot_v2_headers", "hubspot_v3_headers", "load_payload", "make_app", "meta_headers",
    "open_harness",
    "payload_bytes", "payload_names", "put_templates", "recording", "registered_plugin", "run", "sample_event",
    "samples_from_dir", "seed_template", "shared_secret_headers", "standard_webhooks_headers", "uses_samples",
    "webhook_request", "woocommerce_headers",
]


# Only the conformance suite imports pytest: load it when one of its names is first used.
_CONFORMANCE = ("SUITES", "ConformanceBase", "connector_test_class", "uses_samples")


def __getattr__(name: str) -> object:
    if name in _CONFORMANCE:
        from . import conformance
        return getattr(conformance, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
