"""campaigns.queued_from_due_at, queued_from_line: where the count of a campaign's messages in the outbox starts

Each round counts the campaign's recipients waiting in the outbox (at most 1,000 wait at once). The
count searched ``ix_campaign_recipients_due`` from the campaign's first such recipient, stepping over
an entry for every recipient that had ever left the outbox, until the database cleans them away
(PostgreSQL's vacuum). The mark lets it start at the first one still there. (-1, -1) sorts before
every recipient: the first count of a campaign after this migration starts from its beginning.

Revision ID: 0033
Revises: 0032
"""
import sqlalchemy as sa
from alembic import op

revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.add_column(sa.Column('queued_from_due_at', sa.Float(), nullable=False, server_default='-1'))
        batch.add_column(sa.Column('queued_from_line', sa.Integer(), nullable=False, server_default='-1'))


def downgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.drop_column('queued_from_line')
        batch.drop_column('queued_from_due_at')
