"""campaigns.cursor_due_at, cursor_line: where a campaign's next round of admission starts

Each round looked for the first due recipients from the start of the campaign's waiting ones in
``ix_campaign_recipients_due``, stepping over an entry for every recipient admitted before it that
the database had not yet cleaned away (PostgreSQL without autovacuum keeps them all). The cursor
lets a round start after the last recipient the previous one read. (-1, -1) sorts before every
recipient: a campaign that has not admitted anyone starts from its beginning.

Revision ID: 0032
Revises: 0031
"""
import sqlalchemy as sa
from alembic import op

revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.add_column(sa.Column('cursor_due_at', sa.Float(), nullable=False, server_default='-1'))
        batch.add_column(sa.Column('cursor_line', sa.Integer(), nullable=False, server_default='-1'))


def downgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.drop_column('cursor_line')
        batch.drop_column('cursor_due_at')
