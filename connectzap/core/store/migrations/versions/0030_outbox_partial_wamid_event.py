"""ix_outbox_wamid and ix_outbox_event hold only the messages that have a wamid or a source event

Both columns are empty when a message is admitted (a wamid comes when the channel accepts it, and a
campaign's or an API send's message has no source event), yet each admitted message wrote an entry
for its empty value into both indexes. Every query through them asks for given values, which both
SQLite and PostgreSQL know are not NULL, so the partial indexes serve them all.

Revision ID: 0030
Revises: 0029
"""
import sqlalchemy as sa
from alembic import op

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None

PARTIAL = {'ix_outbox_wamid': 'wamid', 'ix_outbox_event': 'source_event_id'}


def upgrade() -> None:
    for name, column in PARTIAL.items():
        op.drop_index(name, table_name='outbox')
        present = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, 'outbox', [column], unique=False, postgresql_where=present, sqlite_where=present)


def downgrade() -> None:
    for name, column in PARTIAL.items():
        op.drop_index(name, table_name='outbox')
        op.create_index(name, 'outbox', [column], unique=False)
