"""campaigns.followed_until, outbox (cancel_key, updated_at), windows (last_inbound_at)

A campaign's outcomes follow only what changed since the last look: its messages updated since
then, and the customers who wrote since then. Without these indexes each engine round read every
recipient of the campaign (a million-recipient campaign, every second).

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('followed_until', sa.Float(), nullable=True))
    op.create_index('ix_outbox_cancel_updated', 'outbox', ['cancel_key', 'updated_at'])
    op.create_index('ix_windows_inbound', 'windows', ['last_inbound_at'])


def downgrade() -> None:
    op.drop_index('ix_windows_inbound', table_name='windows')
    op.drop_index('ix_outbox_cancel_updated', table_name='outbox')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('followed_until')
