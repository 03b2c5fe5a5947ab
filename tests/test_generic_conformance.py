"""The connector conformance suite for the generic webhook connector.

Generic sources keep their secrets per source (``sources.NAME.auth.secrets``), not in one
top-level setting the suite could rotate, so the samples carry the shared-secret header
themselves and the ``signature`` suite is left out: every scheme's valid / tampered / stale /
rotated / missing cases are in tests/test_generic_signatures.py.
"""

from __future__ import annotations

import json

from generic_support import EXAMPLES, example_config

from connectzap.connectors.generic import GenericConnector
from connectzap.testing import Sample, connector_test_class

TOKEN = "conformance-form-token"
CONFIG = {"sources": {**example_config("shop-order")["generic"]["sources"],
                      **example_config("form-lead")["generic"]["sources"]}}
CONFIG["sources"]["contact-form"]["auth"] = {"scheme": "shared_secret", "header": "X-Form-Token", "secrets": [TOKEN]}
HEADERS = {"x-form-token": TOKEN}
LEAD = json.loads((EXAMPLES / "form-lead.json").read_text())


def form(name: str, body: object, **options: object) -> Sample:
    return Sample(name=name, body=body, headers=HEADERS, path_params={"name": "contact-form"}, **options)


TestGenericConformance = connector_test_class(
    GenericConnector, config=CONFIG, skip=["signature"],
    payloads=[
        form("lead", LEAD, expect_kinds=("lead",)),
        form("lead_without_phone", {**LEAD, "answers": {k: v for k, v in LEAD["answers"].items() if k != "phone"}},
             expect="error", error_field="answers.phone"),
        form("lead_without_id", {k: v for k, v in LEAD.items() if k != "submission_id"}, expect="error",
             error_field="submission_id"),
    ])
