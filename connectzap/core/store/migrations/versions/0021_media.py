"""outbox.medium and consents.medium: messages and consent per medium (whatsapp, email, sms)

A message goes out on one medium, through that medium's channel; consent is recorded per
category *and* medium. Every row written before media existed was WhatsApp's, so both columns
default to 'whatsapp'. The consent index leads with the medium's records of one contact.

Revision ID: 0021
Revises: 0020
"""
import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('medium', sa.String(length=16), nullable=False, server_default='whatsapp'))
    with op.batch_alter_table('consents') as batch:
        batch.add_column(sa.Column('medium', sa.String(length=16), nullable=False, server_default='whatsapp'))
        batch.drop_index('ix_consents_contact')
        batch.create_index('ix_consents_contact', ['contact_key', 'category', 'medium', 'at'])


def downgrade() -> None:
    with op.batch_alter_table('consents') as batch:
        batch.drop_index('ix_consents_contact')
        batch.create_index('ix_consents_contact', ['contact_key', 'category', 'at'])
        batch.drop_column('medium')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('medium')
