"""campaigns.marketing_api: a campaign's own choice of the Marketing Messages API

``use`` sends the campaign's marketing template through Meta's Marketing Messages API, ``avoid``
through the Cloud API's /messages; null (shown as ``account``) leaves it to the sending number's
account settings, as every campaign did before.

Revision ID: 0022
Revises: 0021
"""
import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.add_column(sa.Column('marketing_api', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.drop_column('marketing_api')
