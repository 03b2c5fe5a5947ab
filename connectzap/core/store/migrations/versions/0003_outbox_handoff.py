"""outbox.handed_off_at and outbox.unknown_since: narrow and settle ``unknown`` messages

``handed_off_at`` is written (group-committed) right before a message's request is handed to the
channel; a message a dead worker left ``sending`` without it never left the process and is simply
queued again. ``unknown_since`` is when a message became ``unknown``: the settle policy
(``workers.unknown_policy``) counts its grace period from there.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handed_off_at', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('unknown_since', sa.Float(), nullable=True))
    # Messages already unknown count their grace period from when they last changed.
    outbox = sa.table('outbox', sa.column('status', sa.String), sa.column('updated_at', sa.Float),
                      sa.column('unknown_since', sa.Float))
    op.get_bind().execute(outbox.update().where(outbox.c.status == 'unknown')
                          .values(unknown_since=outbox.c.updated_at))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('unknown_since')
        batch_op.drop_column('handed_off_at')
