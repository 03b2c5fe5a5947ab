"""templates.quality: the quality rating Meta gives each template (GREEN, YELLOW, RED or UNKNOWN)

Read with the templates on sync (``quality_score``) and changed by
``message_template_quality_update`` webhooks; the console's Templates page shows and filters by it.
Existing rows have none until the next sync or quality update.

Revision ID: 0019
Revises: 0018
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('templates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quality', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('templates', schema=None) as batch_op:
        batch_op.drop_column('quality')
