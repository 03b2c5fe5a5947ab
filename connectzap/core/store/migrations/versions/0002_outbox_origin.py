"""outbox.origin: ids of the record a message is about, kept after the message is erased

Messages the order-notifications plugin proposed for WooCommerce orders used to be recognised by
their idempotency key (``order_notifications:woocommerce:{shop}:{order}:{status}``); those already
stored get the same information as their origin, so a later failed status still finds its order.

Revision ID: 0002
Revises: 0001
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_OLD_PREFIX = "order_notifications:woocommerce:"


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.Text(), nullable=True))
    outbox = sa.table('outbox', sa.column('id', sa.String), sa.column('idempotency_key', sa.String),
                      sa.column('origin', sa.Text))
    conn = op.get_bind()
    rows = conn.execute(sa.select(outbox.c.id, outbox.c.idempotency_key)
                        .where(outbox.c.idempotency_key.like(_OLD_PREFIX.replace("_", r"\_") + "%", escape="\\")))
    for row in rows.all():
        message_id, key = row.id, row.idempotency_key
        parts = key[len(_OLD_PREFIX):].split(":")
        if len(parts) != 3:
            continue
        origin = {"source": "woocommerce", "shop": parts[0], "order": parts[1], "status": parts[2]}
        conn.execute(outbox.update().where(outbox.c.id == message_id)
                     .values(origin=json.dumps(origin, sort_keys=True)))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('origin')
