"""conversations, automatic_answers, outbox.automatic: human handoff and one automatic answer per message

``conversations`` holds a row per contact a person is handling (none: the bot answers);
``automatic_answers`` records, once per inbound message, which automatic answer it got;
``outbox.automatic`` marks a message as an automatic answer of a given kind.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'conversations',
        sa.Column('contact_key', sa.String(32), primary_key=True),
        sa.Column('handled_by', sa.String(16), nullable=False),
        sa.Column('reason', sa.String(255), nullable=False),
        sa.Column('since', sa.Float(), nullable=False),
        sa.Column('until', sa.Float(), nullable=True),
        sa.Column('event_id', sa.BigInteger(), nullable=True),
        sa.Column('updated_at', sa.Float(), nullable=False),
    )
    op.create_table(
        'automatic_answers',
        sa.Column('inbound_key', sa.String(255), primary_key=True),
        sa.Column('event_id', sa.BigInteger(), nullable=False),
        sa.Column('message_id', sa.String(32), nullable=True),
        sa.Column('kind', sa.String(16), nullable=True),
        sa.Column('at', sa.Float(), nullable=False),
    )
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('automatic', sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('automatic')
    op.drop_table('automatic_answers')
    op.drop_table('conversations')
