"""ix_events_erase, ix_outbox_erase: the housekeeping's erasure of expired payloads by index

Every worker erases expired payloads every few seconds (``erase_after <= now``). Without an index
that was a full scan of the journal and of the outbox, a cost growing with every row ever stored;
the partial indexes hold only the rows still waiting to be erased.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

WAITING = sa.text("erase_after IS NOT NULL")


def upgrade() -> None:
    op.create_index('ix_events_erase', 'events', ['erase_after'], unique=False,
                    postgresql_where=WAITING, sqlite_where=WAITING)
    op.create_index('ix_outbox_erase', 'outbox', ['erase_after'], unique=False,
                    postgresql_where=WAITING, sqlite_where=WAITING)


def downgrade() -> None:
    op.drop_index('ix_outbox_erase', table_name='outbox')
    op.drop_index('ix_events_erase', table_name='events')
