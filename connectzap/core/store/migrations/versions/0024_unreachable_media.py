"""unreachable_media: contacts a medium other than WhatsApp cannot reach (a hard-bounced email
address), per medium, so a later message on that medium is held back while WhatsApp stays open.

Revision ID: 0024
Revises: 0023
"""
import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('unreachable_media',
                    sa.Column('contact_key', sa.String(length=32), nullable=False),
                    sa.Column('medium', sa.String(length=16), nullable=False),
                    sa.Column('failed_at', sa.Float(), nullable=True),
                    sa.Column('reached_at', sa.Float(), nullable=True),
                    sa.PrimaryKeyConstraint('contact_key', 'medium'))


def downgrade() -> None:
    op.drop_table('unreachable_media')
