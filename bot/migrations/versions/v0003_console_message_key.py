"""console message key

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The outbox's key for each console post: after a crash mid-send the post is looked up, not repeated.
    with op.batch_alter_table("console_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key", sa.String(length=200), nullable=True))
        batch_op.create_index("ux_console_key", ["key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("console_messages", schema=None) as batch_op:
        batch_op.drop_index("ux_console_key")
        batch_op.drop_column("key")
