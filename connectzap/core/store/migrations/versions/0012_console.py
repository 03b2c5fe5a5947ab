"""console_users, console_sessions, console_audit: the operator console's logins and audit log

Users log in with a password hashed by argon2id; a session is kept as the SHA-256 of the random
token in its cookie (so a copy of the database logs nobody in); every state-changing action and
every failed login is recorded with who, what and when (failed logins are also what the login
rate limit counts, across every edge process).

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'console_users',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name'))
    op.create_table(
        'console_sessions',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('actor', sa.String(length=80), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('token_hash'))
    op.create_table(
        'console_audit',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('at', sa.Float(), nullable=False),
        sa.Column('actor', sa.String(length=80), nullable=False),
        sa.Column('action', sa.String(length=48), nullable=False),
        sa.Column('target', sa.String(length=255), nullable=True),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.Column('address', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_console_audit_action', 'console_audit', ['action', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_console_audit_action', table_name='console_audit')
    op.drop_table('console_audit')
    op.drop_table('console_sessions')
    op.drop_table('console_users')
