"""templates.pending_category, category_effective_at: a category change Meta announced, and when it applies

Meta announces a re-categorisation (a UTILITY template found to be MARKETING) 24 hours ahead with
``template_category_update`` (``correct_category``, ``category_update_timestamp``). From that time
the gate applies the new category's consent rule. Existing rows have no pending change.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('templates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_category', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('category_effective_at', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('templates', schema=None) as batch_op:
        batch_op.drop_column('category_effective_at')
        batch_op.drop_column('pending_category')
