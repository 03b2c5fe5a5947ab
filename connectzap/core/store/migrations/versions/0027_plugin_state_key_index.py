"""plugin_state: an index on ``key`` alone, for the lookups that know the key but not the plugin
(the times kept per customer, ``contact_times``: read when a BSUID is first linked to a number and
when a customer's records move). The primary key (plugin, key) cannot serve them, so without it
they read the whole table, which grows with the customers.

Revision ID: 0027
Revises: 0026
"""

from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_plugin_state_key", "plugin_state", ["key"])


def downgrade() -> None:
    op.drop_index("ix_plugin_state_key", table_name="plugin_state")
