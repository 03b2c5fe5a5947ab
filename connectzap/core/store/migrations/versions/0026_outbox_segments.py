"""outbox.segments: what an SMS cost -- its GSM-7/UCS-2 segment count, known when the SMS channel
sends it -- kept on the message record (``connectzap messages show``, REST, the console).

Revision ID: 0026
Revises: 0025
"""
import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('segments', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('segments')
