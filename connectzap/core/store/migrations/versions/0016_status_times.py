"""outbox.sent_at, delivered_at, read_at, failed_at and campaign_recipients.replied_at: when each
status happened

Each status webhook carries Meta's ``timestamp``: the first time a message was reported sent,
delivered, read (or played) and failed is kept on the message, so a message's timeline and a
campaign's "read within N hours" can be told after the fact. ``replied_at`` is when a campaign
recipient's first reply after the send came. Existing rows get none (their times were not kept).

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

TIMES = ('sent_at', 'delivered_at', 'read_at', 'failed_at')


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        for name in TIMES:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))
    with op.batch_alter_table('campaign_recipients') as batch:
        batch.add_column(sa.Column('replied_at', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaign_recipients') as batch:
        batch.drop_column('replied_at')
    with op.batch_alter_table('outbox') as batch:
        for name in reversed(TIMES):
            batch.drop_column(name)
