"""Who a contact is: a phone number, a business-scoped user id (BSUID), or both.

Since 2026 WhatsApp names every customer by a BSUID (``US.13491208655302741918``: the country,
a dot, up to 128 letters and digits), unique per business portfolio; a customer with a username
may come with no phone number at all. The store keys contacts by a keyed hash (HMAC) either way:

* a phone number's hash is the contact key, as before BSUIDs existed;
* a BSUID's hash (domain-separated from phones) is the key of a customer known by BSUID only;
* a webhook carrying both links them: the BSUID's hash then points at the phone's key
  (table ``identities``) and what was kept under the BSUID alone moves to the phone's key.

A changed phone number gives the customer a new BSUID (Meta's ``user_changed_number`` and
``user_changed_user_id`` system messages name the previous one): :func:`renumber` moves
consent, opt-outs and windows to the new identity and unlinks the old number, which may be
someone else's tomorrow. A phone number seen with a BSUID other than the one linked to it is
such a recycled number: the earlier customer's records move to their own BSUID's key, so two
customers are never merged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, literal, select, union_all

from . import contact_times, ordering, reachability
from .bsuids import bsuid_key
from .phones import contact_key
from .store.database import Database, now
from .store import outbox as outbox_rows
from .store.schema import (consents, contacts, conversations, events, identities, outbox, plugin_state,
                           unreachable_media, windows)
from .store.among import among


def resolve(conn: Connection, secret: bytes, phone: str | None, user_id: str | None) -> str | None:
    """The contact key of a customer known by ``phone`` (E.164) and/or ``user_id`` (a BSUID).

    The phone decides when both are given; a BSUID resolves to the phone it is linked to."""
    return resolve_many(conn, secret, [(phone, user_id)])[0]


def resolve_many(conn: Connection, secret: bytes,
                 who: list[tuple[str | None, str | None]]) -> list[str | None]:
    """:func:`resolve` for many contacts with one query."""
    wanted = {bsuid_key(user_id, secret) for phone, user_id in who if not phone and user_id}
    linked = _links(conn, wanted)
    keys: list[str | None] = []
    for phone, user_id in who:
        if phone:
            keys.append(contact_key(phone, secret))
        elif user_id:
            own = bsuid_key(user_id, secret)
            keys.append(linked.get(own, own))
        else:
            keys.append(None)
    return keys


def observe(db: Database, conn: Connection, secret: bytes, phone: str | None, user_id: str | None) -> str | None:
    """Record that ``phone`` and ``user_id`` were seen together (a webhook) and return the
    contact key. With only one of them, nothing is recorded and its key is returned."""
    if not (phone and user_id):
        return resolve(conn, secret, phone, user_id)
    key, own = contact_key(phone, secret), bsuid_key(user_id, secret)
    if _links(conn, {own}).get(own) == key:
        return key  # the usual case: nothing changed since the last message
    _evict(db, conn, key, keep=own)
    # What was kept under the BSUID alone belongs to the customer of this number.
    if not _links(conn, {own}):
        _move(db, conn, own, key)
        # Same customer: their messages (queued ones are re-checked under this key) follow them,
        # and so do their events still waiting, ordered with the number's from now on (by journal order).
        conn.execute(outbox.update().where(outbox_rows.of_contacts(conn, [own])).values(contact_key=key))
        conn.execute(events.update().where(events.c.ordering_key == ordering.hashed(ordering.contact(own), secret),
                                           events.c.status == "pending")
                     .values(ordering_key=ordering.hashed(ordering.contact(key), secret)))
    db.upsert(conn, identities, {"identity_key": own, "contact_key": key, "updated_at": now()}, ["identity_key"])
    return key


def plain_first_links(conn: Connection, secret: bytes, firsts: Mapping[str, str]) -> set[str]:
    """Of ``firsts`` (a BSUID's key -> the contact key of the number it was seen with; none of these
    BSUIDs linked yet), the BSUIDs whose first link :func:`observe` would only record: no other BSUID
    is linked to the number (nothing to evict), and nothing is kept under the BSUID alone (no
    consent, window, unreachable mark, conversation, plugin time, outbox message or pending event:
    nothing to move). One query for all of them; :func:`link` then records them together."""
    if not firsts:
        return set()
    owns = sorted(firsts)
    numbers = sorted(set(firsts.values()))
    by_ordering = {ordering.hashed(ordering.contact(own), secret): own for own in owns}
    by_time = {name: own for own in owns for name in contact_times.keys_of(own)}
    what, key = "what", "key"
    parts = [select(literal("number").label(what), identities.c.contact_key.label(key))
             .where(among(conn, identities.c.contact_key, numbers))]
    parts += [select(literal("own").label(what), table.c.contact_key.label(key))
              .where(among(conn, table.c.contact_key, owns))
              for table in (consents, windows, contacts, unreachable_media, conversations)]
    parts.append(select(literal("own").label(what), outbox.c.contact_key.label(key))
                 .where(outbox_rows.of_contacts(conn, owns)))
    parts.append(select(literal("ordering").label(what), events.c.ordering_key.label(key))
                 .where(among(conn, events.c.ordering_key, sorted(by_ordering)), events.c.status == "pending"))
    if by_time:
        parts.append(select(literal("time").label(what), plugin_state.c.key.label(key))
                     .where(among(conn, plugin_state.c.key, sorted(by_time))))
    busy_numbers: set[str] = set()
    busy: set[str] = set()
    for kind, value in conn.execute(union_all(*parts)).all():
        found = str(value)
        if kind == "number":
            busy_numbers.add(found)
        else:
            busy.add(by_ordering[found] if kind == "ordering" else by_time[found] if kind == "time" else found)
    return {own for own, number in firsts.items() if own not in busy and number not in busy_numbers}


def link(db: Database, conn: Connection, links: Mapping[str, str]) -> None:
    """Record ``links`` (a BSUID's key -> its number's contact key) with one statement: what
    :func:`observe` records once :func:`plain_first_links` found it has nothing else to do."""
    if not links:
        return
    stmt = db.insert(identities)
    at = now()
    conn.execute(stmt.on_conflict_do_update(index_elements=["identity_key"],
                                            set_={"contact_key": stmt.excluded.contact_key,
                                                  "updated_at": stmt.excluded.updated_at}),
                 [{"identity_key": own, "contact_key": key, "updated_at": at} for own, key in sorted(links.items())])


def renumber(db: Database, conn: Connection, secret: bytes, *, old_phone: str | None, old_user_id: str | None,
             new_phone: str | None, new_user_id: str | None) -> str | None:
    """A customer changed number (and so BSUID): their consent, opt-outs and windows move from the
    old identity to the new one, and the old number and BSUID are no longer linked to them.
    Returns the new contact key (None when the notice names no new identity)."""
    old_own = bsuid_key(old_user_id, secret) if old_user_id else None
    olds: set[str | None] = {resolve(conn, secret, None, old_user_id)} if old_user_id else set()
    if old_phone:
        number = contact_key(old_phone, secret)
        holders: set[str | None] = set(conn.execute(select(identities.c.identity_key)
                                   .where(identities.c.contact_key == number)).scalars())
        if holders <= {old_own}:  # the number's records are this customer's, not a later holder's
            olds.add(number)
    # The new number may still hold an earlier customer's records: they go to that customer first.
    if new_phone and new_user_id:
        observe(db, conn, secret, new_phone, new_user_id)
    elif new_phone:
        _evict(db, conn, contact_key(new_phone, secret), keep=None)
    new = resolve(conn, secret, new_phone, new_user_id)
    if new is None:
        return None
    for old in olds - {new, None}:
        assert old is not None
        _move(db, conn, old, new)
        conn.execute(identities.delete().where(identities.c.contact_key == old))  # the old number's links
    if old_own is not None and old_own != new:
        conn.execute(identities.delete().where(identities.c.identity_key == old_own))
    return new


def _evict(db: Database, conn: Connection, key: str, keep: str | None) -> None:
    """Number ``key`` is linked to a BSUID other than ``keep``: the number now belongs to another
    customer, so what is kept under it goes to the earlier customer's own BSUID."""
    others: list[str] = list(conn.execute(select(identities.c.identity_key).where(
        identities.c.contact_key == key, identities.c.identity_key != keep)).scalars())
    for other in others:
        _move(db, conn, key, other)
        conn.execute(identities.delete().where(identities.c.identity_key == other))


def linked(conn: Connection, bsuid_keys: Iterable[str]) -> dict[str, str]:
    """The number's contact key for each of ``bsuid_keys`` (BSUID hashes) that is linked to one."""
    return _links(conn, bsuid_keys)


def _links(conn: Connection, identity_keys: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(identity_keys))
    if not wanted:
        return {}
    rows = conn.execute(select(identities.c.identity_key, identities.c.contact_key)
                        .where(among(conn, identities.c.identity_key, wanted))).all()
    return {row[0]: row[1] for row in rows}


def _move(db: Database, conn: Connection, old: str, new: str) -> None:
    """Everything the store keeps about contact ``old`` becomes ``new``'s: the consent ledger (its
    times still decide), the windows (the newer time per business number) and the unreachable
    mark (WhatsApp's dropped: a new number may well be reachable; another medium's kept); a
    handoff to people moves along, and so do the plugins' per-customer times
    (:mod:`connectzap.core.contact_times`)."""
    contact_times.move(db, conn, old, new)
    conn.execute(consents.update().where(consents.c.contact_key == old).values(contact_key=new))
    for number, at in conn.execute(select(windows.c.business_phone_number_id, windows.c.last_inbound_at)
                                   .where(windows.c.contact_key == old)).all():
        current = conn.execute(select(windows.c.last_inbound_at).where(
            windows.c.contact_key == new, windows.c.business_phone_number_id == number)).scalar()
        if current is None or current < at:
            db.upsert(conn, windows, {"contact_key": new, "business_phone_number_id": number,
                                      "last_inbound_at": at}, ["contact_key", "business_phone_number_id"])
    conn.execute(windows.delete().where(windows.c.contact_key == old))
    conn.execute(contacts.delete().where(contacts.c.contact_key == old))
    # another medium's mark (a bounced address) is not about the number: it moves along, newer time kept
    for mark in conn.execute(select(unreachable_media).where(unreachable_media.c.contact_key == old)).all():
        if mark.failed_at is not None:
            reachability.mark_unreachable(db, conn, new, mark.medium, mark.failed_at)
        if mark.reached_at is not None:
            reachability.reached(db, conn, new, mark.medium, mark.reached_at)
    conn.execute(unreachable_media.delete().where(unreachable_media.c.contact_key == old))
    # a person handling the old identity's conversation still does (unless the new one has its own)
    if conn.execute(select(conversations.c.contact_key).where(conversations.c.contact_key == new)).first() is None:
        conn.execute(conversations.update().where(conversations.c.contact_key == old).values(contact_key=new))
    conn.execute(conversations.delete().where(conversations.c.contact_key == old))
