"""templates keyed by (waba_id, name, language): each business account's templates apart

With several WhatsApp Business Accounts, two accounts may each have a template of the same name
and language (different text, even a different category). The cache kept one per name and
language, so a sync of the second account replaced the first's. From here on ``waba_id`` is part
of the key; ``''`` marks a template of no particular account (one added by hand or by a test),
which any account's number may send, as before. Existing rows keep their ``waba_id`` (a row
without one gets ``''``), so a single-account install looks its templates up as it did.

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_COLUMNS = ("name", "language", "status", "category", "parameter_format", "components", "template_id",
            "updated_at", "pending_category", "category_effective_at")


def _table(name: str, key: tuple[str, ...], pkey: str, waba_nullable: bool) -> None:
    op.create_table(name,
    sa.Column('waba_id', sa.String(length=64), nullable=waba_nullable),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('parameter_format', sa.String(length=16), nullable=False),
    sa.Column('components', sa.Text(), nullable=False),
    sa.Column('template_id', sa.String(length=64), nullable=True),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('pending_category', sa.String(length=32), nullable=True),
    sa.Column('category_effective_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint(*key, name=pkey),
    )


def _rebuild(key: tuple[str, ...], pkey: str, waba_nullable: bool, waba: str, where: str = "") -> None:
    # A new table, filled and renamed: the same on SQLite and PostgreSQL (a primary key cannot be
    # changed in place on SQLite).
    _table('templates_rekeyed', key, pkey, waba_nullable)  # pkey: unlike the old table's (PostgreSQL)
    columns = ", ".join(_COLUMNS)
    op.execute(f"INSERT INTO templates_rekeyed (waba_id, {columns}) SELECT {waba}, {columns} FROM templates {where}")
    op.drop_table('templates')
    op.rename_table('templates_rekeyed', 'templates')


def upgrade() -> None:
    _rebuild(('waba_id', 'name', 'language'), 'templates_account_pkey', False, "COALESCE(waba_id, '')")


def downgrade() -> None:
    # Back to one row per name and language: the row of no particular account, else the first account's.
    _rebuild(('name', 'language'), 'templates_pkey', True, "NULLIF(waba_id, '')",
             "WHERE waba_id = (SELECT MIN(t.waba_id) FROM templates t "
             "WHERE t.name = templates.name AND t.language = templates.language)")
