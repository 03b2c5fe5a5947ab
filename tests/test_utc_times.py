"""Every time connectzap writes out (REST, --json, CSV exports, reports, outgoing webhooks, logs)
reads one way: ISO 8601 in UTC with ``Z`` -- :func:`connectzap.core.clock.iso_utc`, which must agree
with how pydantic writes the REST API's times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter

from connectzap.core.clock import iso_utc

REST = TypeAdapter(datetime)


@pytest.mark.parametrize("when", [datetime(2026, 12, 5, 21, 40, 27, tzinfo=UTC),
                                  datetime(2026, 12, 5, 21, 40, 27, 220279, tzinfo=UTC),
                                  datetime(2026, 12, 5, 21, 40, 27, 120000, tzinfo=UTC)])
def test_a_utc_time_is_written_as_the_rest_api_writes_it(when: datetime) -> None:
    assert iso_utc(when) == REST.dump_python(when, mode="json") and iso_utc(when).endswith("Z")


def test_other_offsets_are_written_in_utc_and_a_naive_time_is_taken_as_utc() -> None:
    madrid = datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert iso_utc(madrid) == "2026-06-01T10:00:00Z"
    assert iso_utc(datetime(2026, 6, 1, 12, 0)) == "2026-06-01T12:00:00Z"
    assert iso_utc(datetime(2026, 6, 1, 12, 0, 0, 412345, tzinfo=UTC), timespec="milliseconds") \
        == "2026-06-01T12:00:00.412Z"
