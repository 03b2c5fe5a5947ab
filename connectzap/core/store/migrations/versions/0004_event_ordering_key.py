"""events.ordering_key: the keyed hash of what an event is about, so workers apply one key at a time

Existing events get no key: those already pending are claimed as before (in parallel), only
events journaled after the upgrade are ordered.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ordering_key', sa.String(length=32), nullable=True))
    op.create_index('ix_events_ordering', 'events', ['ordering_key', 'id'], unique=False,
                    postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_index('ix_events_ordering', table_name='events')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('ordering_key')
