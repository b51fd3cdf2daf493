"""derive run counters instead of storing them

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("finish_counter")
        batch_op.drop_column("event_seq")


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_seq", sa.INTEGER(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("finish_counter", sa.INTEGER(), nullable=False, server_default="0"))
