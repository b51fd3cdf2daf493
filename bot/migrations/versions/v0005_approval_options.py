"""approval kinds, revisions and escalation

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=20), server_default="binary", nullable=False))
        batch_op.add_column(sa.Column("veto", sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column("channel", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("notify", sa.String(length=20), server_default="channel", nullable=False)
        )
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("max_revisions", sa.Integer(), server_default="3", nullable=False))
        batch_op.add_column(sa.Column("can_revise", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("form", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("escalation", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("auto_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_column("auto_reason")
        batch_op.drop_column("escalation")
        batch_op.drop_column("form")
        batch_op.drop_column("can_revise")
        batch_op.drop_column("max_revisions")
        batch_op.drop_column("revision")
        batch_op.drop_column("notify")
        batch_op.drop_column("channel")
        batch_op.drop_column("veto")
        batch_op.drop_column("kind")
