"""ix_outbox_contact leaves out a campaign's messages still waiting in the queue

Each entry of the contact index is a keyed hash, so a round of admission wrote a random page of it
per recipient: at a million recipients most of what a round wrote and committed. A campaign's
queued messages (at most a round or two a running campaign) are now found by contact through the
campaign's recipients instead, and enter the index as they leave the queue.

Revision ID: 0029
Revises: 0028
"""
import sqlalchemy as sa
from alembic import op

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None

INDEXED = sa.text("status <> 'queued' OR plugin IS NULL OR plugin NOT LIKE 'campaign:%'")


def upgrade() -> None:
    op.drop_index('ix_outbox_contact', table_name='outbox')
    op.create_index('ix_outbox_contact', 'outbox', ['contact_key'], unique=False,
                    postgresql_where=INDEXED, sqlite_where=INDEXED)


def downgrade() -> None:
    op.drop_index('ix_outbox_contact', table_name='outbox')
    op.create_index('ix_outbox_contact', 'outbox', ['contact_key'], unique=False)
