"""plugin_state.forget_at: a plugin's value the housekeeping forgets after its deadline

A plugin may keep a record that is of no use after a time (the chatbot's "the bot answers this
message later", useless once ``later_minutes`` passed). ``forget_at`` is that time; every
worker's housekeeping deletes the rows whose time came, through a partial index holding only the
rows that have one. Existing rows get none: they are kept as before.

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

SET = sa.text("forget_at IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table('plugin_state') as batch:
        batch.add_column(sa.Column('forget_at', sa.Float(), nullable=True))
    op.create_index('ix_plugin_state_forget', 'plugin_state', ['forget_at'], unique=False,
                    postgresql_where=SET, sqlite_where=SET)


def downgrade() -> None:
    op.drop_index('ix_plugin_state_forget', table_name='plugin_state')
    with op.batch_alter_table('plugin_state') as batch:
        batch.drop_column('forget_at')
