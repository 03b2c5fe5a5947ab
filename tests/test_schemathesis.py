"""The REST API against its own OpenAPI document: generated requests (valid and invalid) never
produce a 5xx, and every answer matches the declared status codes, content types and schemas."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_headers_conformance, response_schema_conformance,
                                               status_code_conformance)
from server_support import AUTH, SETTINGS

from connectzap.core.server import create_app
from connectzap.testing import seed_template
from connectzap.testing.apps import make_app

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection]


def _app() -> object:
    # Schemathesis reads the schema when the module is collected (its fixture loader does not
    # work with this pytest), so the engine is built here, on SQLite, and removed at exit.
    folder = Path(tempfile.mkdtemp(prefix="cz-schemathesis-"))
    engine = make_app(folder, database_url=f"sqlite:///{folder / 'connectzap.db'}", **SETTINGS)
    seed_template(engine, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    atexit.register(engine.close)
    return create_app(engine, run_workers=False)


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=auth_for(case), checks=CHECKS)


def auth_for(case: schemathesis.Case) -> dict[str, str]:
    """A valid API key for every case whose headers were generated valid. Where schemathesis broke
    the headers on purpose (dropped or mangled `Authorization`), the case goes out as generated:
    putting our key back would turn a request meant to be refused into a valid one, and the
    negative-data check would then blame the API for accepting it."""
    headers = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    return {} if headers is not None and headers.mode.is_negative else AUTH
