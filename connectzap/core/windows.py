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
    open_windows(db, conn, [(contact_key, business_number, at)])


def open_windows(db: Database, conn: Connection, opened: list[tuple[str, str | None, float]]) -> None:
    """:func:`open_window` for several (contact key, business number, time) at once: one upsert
    (a window only ever moves forward) and one statement marking the contacts reachable."""
    if not opened:
        return
    newest: dict[tuple[str, str], float] = {}
    for contact_key, business_number, at in opened:
        key = (contact_key, business_number or "")
        newest[key] = max(at, newest.get(key, at))  # one row per window: an upsert may touch each once
    stmt = db.insert(windows)
    conn.execute(stmt.on_conflict_do_update(index_elements=["contact_key", "business_phone_number_id"],
                                            set_={"last_inbound_at": stmt.excluded.last_inbound_at},
                                            where=windows.c.last_inbound_at < stmt.excluded.last_inbound_at),
                 [{"contact_key": k, "business_phone_number_id": n, "last_inbound_at": at}
                  for (k, n), at in newest.items()])
    mark_reachable(conn, {k for k, _ in newest})  # the customer wrote: they have WhatsApp after all


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


