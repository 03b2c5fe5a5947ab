"""campaigns, campaign_recipients: broadcasts of one template to an audience

A campaign's recipients are admitted through the send gate like any message; each row keeps the
recipient's outcome. The number and parameters are erased once the recipient's message is settled.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'campaigns',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('template', sa.Text(), nullable=False),
        sa.Column('business_phone_number_id', sa.String(length=64), nullable=True),
        sa.Column('starts_at', sa.Float(), nullable=True),
        sa.Column('window_start', sa.Integer(), nullable=True),
        sa.Column('window_end', sa.Integer(), nullable=True),
        sa.Column('rate_per_minute', sa.Float(), nullable=True),
        sa.Column('next_slot_at', sa.Float(), nullable=True),
        sa.Column('waiting', sa.Text(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('started_at', sa.Float(), nullable=True),
        sa.Column('ended_at', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_campaigns_state', 'campaigns', ['state'])
    op.create_table(
        'campaign_recipients',
        sa.Column('campaign_id', sa.String(length=32), nullable=False),
        sa.Column('contact_key', sa.String(length=32), nullable=False),
        sa.Column('line', sa.Integer(), nullable=False),
        sa.Column('recipient', sa.String(length=32), nullable=True),
        sa.Column('masked', sa.String(length=32), nullable=False),
        sa.Column('zones', sa.String(length=255), nullable=True),
        sa.Column('params', sa.Text(), nullable=True),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=64), nullable=True),
        sa.Column('error_code', sa.String(length=32), nullable=True),
        sa.Column('error_title', sa.Text(), nullable=True),
        sa.Column('message_id', sa.String(length=32), nullable=True),
        sa.Column('message_status', sa.String(length=16), nullable=True),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('backoffs', sa.Integer(), nullable=False),
        sa.Column('due_at', sa.Float(), nullable=False),
        sa.Column('admitted_at', sa.Float(), nullable=True),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('campaign_id', 'contact_key'),
    )
    op.create_index('ix_campaign_recipients_due', 'campaign_recipients', ['campaign_id', 'outcome', 'due_at', 'line'])
    op.create_index('ix_campaign_recipients_message', 'campaign_recipients', ['message_id'])


def downgrade() -> None:
    op.drop_index('ix_campaign_recipients_message', table_name='campaign_recipients')
    op.drop_index('ix_campaign_recipients_due', table_name='campaign_recipients')
    op.drop_table('campaign_recipients')
    op.drop_index('ix_campaigns_state', table_name='campaigns')
    op.drop_table('campaigns')
