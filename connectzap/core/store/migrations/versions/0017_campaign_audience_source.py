"""campaigns.audience_source, campaign_recipients.source_ref: audiences read from a connector

A campaign's audience may come from an external system (a HubSpot list, a shop's customers).
``audience_source`` names that source; each recipient keeps its record's id there
(``source_ref``, a CRM id, not a number) so the connector can write the outcome back to the same
record once the campaign has ended. Existing rows get none: they came from files.

Revision ID: 0017
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.add_column(sa.Column('audience_source', sa.String(length=64), nullable=True))
    with op.batch_alter_table('campaign_recipients') as batch:
        batch.add_column(sa.Column('source_ref', sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaign_recipients') as batch:
        batch.drop_column('source_ref')
    with op.batch_alter_table('campaigns') as batch:
        batch.drop_column('audience_source')
