"""outbox.pricing_category, pricing_type, billable: what Meta said a message costs (per-message pricing)

Since July 2025 Meta prices each delivered message; every status webhook carries ``pricing``
(``category``, ``type`` such as ``regular`` or ``free_customer_service``, ``billable``). The latest
one is kept on the message, and ``/metrics`` counts messages by it. Existing messages have none.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pricing_category', sa.String(length=48), nullable=True))
        batch_op.add_column(sa.Column('pricing_type', sa.String(length=48), nullable=True))
        batch_op.add_column(sa.Column('billable', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('billable')
        batch_op.drop_column('pricing_type')
        batch_op.drop_column('pricing_category')
