"""campaign_recipients.country: the recipient number's country, for the price of its message

Meta prices a message by the recipient's market; a campaign report applies the configured
``[pricing]`` rates by it. The number itself is erased once the message is settled, so its ISO
3166 region is kept from the start (not personal on its own). Existing rows get none: their
messages are priced at the category's ``"*"`` rate.

Revision ID: 0018
Revises: 0017
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaign_recipients') as batch:
        batch.add_column(sa.Column('country', sa.String(length=2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaign_recipients') as batch:
        batch.drop_column('country')
