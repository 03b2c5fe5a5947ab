"""ix_outbox_cancel_changed replaces ix_outbox_cancel_updated: a campaign follows only changed messages

A campaign's outcomes follow its messages' changes, re-reading the last minute each round (a change
may commit after it was stamped). The old index held every message, so each round re-read all
that admission had just inserted -- at thousands of admissions a second most of the round's time,
and with PostgreSQL's statistics not yet covering a fresh campaign a plan that grew with every
round. The partial index holds only rows changed after their insert (status no longer ``queued``,
or stamped again later); admission records its own rows' status on the recipient itself.

Revision ID: 0020
Revises: 0019
"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

CHANGED = sa.text("status <> 'queued' OR updated_at > created_at")


def upgrade() -> None:
    op.create_index('ix_outbox_cancel_changed', 'outbox', ['cancel_key', 'updated_at'], unique=False,
                    postgresql_where=CHANGED, sqlite_where=CHANGED)
    op.drop_index('ix_outbox_cancel_updated', table_name='outbox')


def downgrade() -> None:
    op.create_index('ix_outbox_cancel_updated', 'outbox', ['cancel_key', 'updated_at'], unique=False)
    op.drop_index('ix_outbox_cancel_changed', table_name='outbox')
