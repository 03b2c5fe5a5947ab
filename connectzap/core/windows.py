"""The 24-hour customer service windows: opened by a customer's message, per business number.

Inside a window free-form replies are allowed; outside it only approved templates. An inbound
message also proves the contact is reachable again.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from .reachability import mark_reachable
from .store.database import Database, now
from .store.schema import windows

WINDOW_SECONDS = 24 * 3600


def open_window(db: Database, conn: Connection, contact_key: str, at: float, business_number: str | None) -> None:
    """Open or refresh the window from an inbound message's own timestamp (never moving it back)."""
    key = {"contact_key": contact_key, "business_phone_number_id": business_number or ""}
    row = conn.execute(select(windows.c.last_inbound_at).where(
        windows.c.contact_key == contact_key, windows.c.business_phone_number_id == key["business_phone_number_id"])
    ).first()
    if row is None:
        conn.execute(windows.insert().values(**key, last_inbound_at=at))
    elif row[0] < at:
        conn.execute(windows.update().where(
            windows.c.contact_key == contact_key,
            windows.c.business_phone_number_id == key["business_phone_number_id"]).values(last_inbound_at=at))
    mark_reachable(conn, contact_key)  # the customer wrote: they have WhatsApp after all


def last_inbound(conn: Connection, contact_key: str, business_number: str | None = None) -> float | None:
    stmt = select(windows.c.business_phone_number_id, windows.c.last_inbound_at).where(
        windows.c.contact_key == contact_key)
    return latest_inbound([(r[0], r[1]) for r in conn.execute(stmt)], business_number)


def latest_inbound(windows_of_contact: list[tuple[str, float]], business_number: str | None) -> float | None:
    """The newest inbound time among (number, time) pairs that count for ``business_number``:
    a window opened on that number, or one recorded before we knew the number."""
    return max((at for number, at in windows_of_contact if not business_number or number in (business_number, "")),
               default=None)


def is_open(last: float | None, at: float | None = None) -> bool:
    return last is not None and (at if at is not None else now()) < last + WINDOW_SECONDS


def window_open(conn: Connection, contact_key: str, at: float | None = None,
                business_number: str | None = None) -> bool:
    return is_open(last_inbound(conn, contact_key, business_number), at)


