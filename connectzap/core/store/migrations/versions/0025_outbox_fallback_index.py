"""ix_outbox_fallback_of: a message's fallbacks found by index (the console's message page links a
WhatsApp message to the fallback that stood in for it); partial, so it holds only fallback rows.

Revision ID: 0025
Revises: 0024
"""
import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

FALLBACKS = sa.text("fallback_of IS NOT NULL")


def upgrade() -> None:
    op.create_index('ix_outbox_fallback_of', 'outbox', ['fallback_of'], unique=False,
                    postgresql_where=FALLBACKS, sqlite_where=FALLBACKS)


def downgrade() -> None:
    op.drop_index('ix_outbox_fallback_of', table_name='outbox')
