"""identities: business-scoped user ids (BSUIDs) linked to phone numbers; outbox.recipient holds a BSUID

A contact is a phone number, a BSUID, or both. Existing contacts are phone numbers and keep
their keys; the new table only links a BSUID's keyed hash to a phone's. ``outbox.recipient``
grows to hold a BSUID (two letters, a dot and up to 128 characters).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'identities',
        sa.Column('identity_key', sa.String(length=32), nullable=False),
        sa.Column('contact_key', sa.String(length=32), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('identity_key'),
    )
    op.create_index('ix_identities_contact', 'identities', ['contact_key'], unique=False)
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('recipient', existing_type=sa.String(length=32), type_=sa.String(length=160),
                              existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('recipient', existing_type=sa.String(length=160), type_=sa.String(length=32),
                              existing_nullable=True)
    op.drop_index('ix_identities_contact', table_name='identities')
    op.drop_table('identities')
