"""events.last_error: '' becomes NULL in rows written before the journal stopped writing ''

Until the journal fix, an event whose remaining deliveries had only not run yet got
``last_error = ''``, and kept it once done. An empty text is never an error: NULL is what the
journal writes now, so old rows are made to read the same (``connectzap events`` and the REST API
then show no error for them). Rows with a real error text are untouched.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    events = sa.table('events', sa.column('last_error', sa.Text()))
    op.execute(events.update().where(events.c.last_error == '').values(last_error=None))


def downgrade() -> None:
    # Nothing to undo: NULL and '' meant the same, and NULL is what the journal writes.
    pass
