"""The key columns admission and the sender compare are byte-ordered on PostgreSQL (``COLLATE "C"``,
migration 0031): under the database's collation (``C.UTF-8`` here, ``en_US.UTF-8`` in many
deployments) every step of an index descent on them called ``strcoll``. SQLite's text is byte-ordered
already (``BINARY``), so its schema is unchanged. What orders by these columns still pages right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, inspect, select, text

from connectzap import Connectzap
from connectzap.core.store import outbox as outbox_rows
from connectzap.core.store.schema import metadata, outbox
from connectzap.testing.apps import _postgres_schema_url, drop_postgres_schema
from conftest import PG_URL
from test_store import downgrade

KEY_COLUMNS = {
    "outbox": ("id", "idempotency_key", "contact_key", "cancel_key", "status"),
    "campaign_recipients": ("campaign_id", "contact_key", "outcome", "message_id"),
    "consents": ("contact_key", "category", "medium"),
    "contacts": ("contact_key",),
    "windows": ("contact_key",),
    "conversations": ("contact_key",),
}
KEYS = {(table, column) for table, columns in KEY_COLUMNS.items() for column in columns}


def _add(conn: Connection, ids: list[str]) -> None:
    base: dict[str, Any] = {"request_hash": "", "contact_key": "k", "category": "utility", "content_type": "text",
                            "status": "failed", "next_attempt_at": 0.0, "attempts": 1, "created_at": 0.0,
                            "updated_at": 0.0}
    conn.execute(outbox.insert(), [{**base, "id": i, "idempotency_key": f"key {i}"} for i in ids])


def _collations(conn: Connection) -> dict[tuple[str, str], str]:
    """Each text column of the current schema's tables: its collation (``default``: the database's)."""
    rows = conn.execute(text(
        "SELECT c.relname, a.attname, co.collname FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_collation co ON co.oid = a.attcollation"
        " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"
        " AND a.attnum > 0 AND NOT a.attisdropped AND c.relname <> 'alembic_version'"))
    return {(table, column): collation for table, column, collation in rows}


def _index_collations(conn: Connection) -> dict[tuple[str, str, str], str]:
    """Each text column of each index of the current schema: the collation the index orders it by."""
    rows = conn.execute(text(
        "SELECT t.relname, i.relname, a.attname, co.collname"
        " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
        " CROSS JOIN LATERAL unnest(x.indkey::int2[], x.indcollation::oid[]) AS k(attnum, coll)"
        " JOIN pg_collation co ON co.oid = k.coll"
        " JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum"
        " WHERE t.relnamespace = current_schema()::regnamespace AND t.relname <> 'alembic_version'"))
    return {(table, index, column): collation for table, index, column, collation in rows}


def test_key_columns_and_their_indexes_compare_bytes(app: Connectzap) -> None:
    with app.db.read() as conn:
        if conn.dialect.name == "sqlite":  # BINARY, byte order: no collation declared, none needed
            ddl = " ".join(conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL").scalars())
            assert "COLLATE" not in ddl.upper()
            return
        columns, indexes = _collations(conn), _index_collations(conn)
    assert {key: columns[key] for key in KEYS} == dict.fromkeys(KEYS, "C")
    assert {key: c for key, c in columns.items() if key not in KEYS} == dict.fromkeys(columns.keys() - KEYS, "default")
    on_keys = {index: c for index, c in indexes.items() if (index[0], index[2]) in KEYS}
    assert {index for _, index, _ in on_keys} >= {"outbox_pkey", "ix_outbox_due", "ix_outbox_contact",
                                                  "campaign_recipients_pkey", "ix_campaign_recipients_due",
                                                  "ix_consents_contact", "windows_pkey"}
    assert on_keys == dict.fromkeys(on_keys, "C")


def test_a_schema_created_from_the_tables_matches_the_migrated_one(app: Connectzap, backend: str) -> None:
    """``metadata.create_all`` (schema.py) and the migrations give every column the same collation."""
    if backend != "postgres":
        pytest.skip("PostgreSQL only: SQLite declares no collation either way")
    url = _postgres_schema_url(PG_URL or "")
    engine = create_engine(url)
    try:
        metadata.create_all(engine)
        with engine.connect() as conn:
            created, created_indexes = _collations(conn), _index_collations(conn)
        with app.db.read() as conn:
            migrated, migrated_indexes = _collations(conn), _index_collations(conn)
    finally:
        engine.dispose()
        drop_postgres_schema(url)
    assert {key: created[key] for key in KEYS} == dict.fromkeys(KEYS, "C")
    assert created == migrated
    assert created_indexes == migrated_indexes  # by name too (test_..._name_their_constraints_alike)


def _constraints(engine: Engine) -> set[tuple[str, str, str | None, tuple[str, ...]]]:
    """Every primary key, unique and foreign key constraint and index of the schema: (kind, table, name,
    columns). SQLite reads a constraint's name from its table's ``CREATE TABLE`` (None: unnamed)."""
    found: set[tuple[str, str, str | None, tuple[str, ...]]] = set()
    inspector = inspect(engine)
    for table in set(inspector.get_table_names()) - {"alembic_version"}:
        key = inspector.get_pk_constraint(table)
        found.add(("primary key", table, key.get("name"), tuple(key["constrained_columns"])))
        found |= {("unique", table, u.get("name"), tuple(u["column_names"]))
                  for u in inspector.get_unique_constraints(table)}
        found |= {("foreign key", table, f.get("name"), tuple(f["constrained_columns"]))
                  for f in inspector.get_foreign_keys(table)}
        found |= {("index", table, i.get("name"), tuple(str(c) for c in i["column_names"]))
                  for i in inspector.get_indexes(table)}
    return found


def test_the_tables_and_the_migrations_name_their_constraints_alike(app: Connectzap, backend: str,
                                                                     tmp_path: Path) -> None:
    """A schema made by ``metadata.create_all`` names every constraint and index as the migrations
    named it, so tools comparing the two (autogenerate, a DBA's diff) see no difference; the templates'
    primary key is ``templates_account_pkey`` either way (migration 0014), not ``templates_pkey``."""
    url = _postgres_schema_url(PG_URL or "") if backend == "postgres" else f"sqlite:///{tmp_path / 'created.db'}"
    engine = create_engine(url)
    try:
        metadata.create_all(engine)
        created = _constraints(engine)
    finally:
        engine.dispose()
        drop_postgres_schema(url)
    migrated = _constraints(app.db.engine)
    assert ("primary key", "templates", "templates_account_pkey", ("waba_id", "name", "language")) in migrated
    assert (created - migrated, migrated - created) == (set(), set())


def test_the_migration_goes_back_to_the_database_collation_and_forth(app: Connectzap) -> None:
    """Downgraded, the key columns take the database's collation again (and their rows stay); upgraded
    again, byte order. SQLite: nothing to do either way."""
    with app.db.begin() as conn:
        _add(conn, ["m1", "m2"])
    postgres = not app.db.is_sqlite
    downgrade(app, "0030")
    with app.db.read() as conn:
        before = _collations(conn) if postgres else {}
    app.db.migrate()
    with app.db.read() as conn:
        after = _collations(conn) if postgres else {}
        assert conn.execute(select(outbox.c.id).order_by(outbox.c.id)).scalars().all() == ["m1", "m2"]
    if not postgres:
        return
    assert {key: before[key] for key in KEYS} == dict.fromkeys(KEYS, "default")
    assert {key: after[key] for key in KEYS} == dict.fromkeys(KEYS, "C")
    assert {key: c for key, c in before.items() if key not in KEYS} == {
        key: c for key, c in after.items() if key not in KEYS}


# Ids whose byte order differs from a language's (en-US puts punctuation first and compares letters
# before their case): the store pages by byte order on both databases, as Python sorts them.
IDS = ["m-1", "m_1", "mA1", "ma1", "mB", "mb", "m01", "m1", "M1", "m 1", "mZz", "m.a", "m~"]


@pytest.mark.parametrize("contact", [None, "k"], ids=["all", "by-contact"])
@pytest.mark.parametrize("limit", [1, 3, 50])
def test_keyset_pages_by_id_return_each_message_once_in_byte_order(app: Connectzap, contact: str | None,
                                                                   limit: int) -> None:
    with app.db.begin() as conn:
        _add(conn, IDS)
    seen: list[str] = []
    before: str | None = None
    with app.db.read() as conn:
        while True:
            page = [r["id"] for r in outbox_rows.listing(conn, contact_key=contact, before_id=before, limit=limit)]
            seen += page
            if len(page) < limit:
                break
            before = page[-1]
    assert seen == sorted(IDS, reverse=True)
