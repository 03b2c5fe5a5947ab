"""ix_events_received and ix_outbox_created: the console's overview counts what flowed in the last
minutes (and messages of the last 24 hours) by index instead of reading the whole journal and outbox.

Revision ID: 0028
Revises: 0027
"""
from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_events_received', 'events', ['received_at'], unique=False)
    op.create_index('ix_outbox_created', 'outbox', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_created', table_name='outbox')
    op.drop_index('ix_events_received', table_name='events')
