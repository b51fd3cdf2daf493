"""chat delivery across processes: per-lane pacing shared by every process, and the card's first-post tries

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_pacing",
        sa.Column("lane", sa.String(length=300), nullable=False),
        sa.Column("next_allowed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("lane"),
    )
    with op.batch_alter_table("chat_cards") as batch:
        batch.add_column(sa.Column("post_tries", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("chat_cards") as batch:
        batch.drop_column("post_tries")
    op.drop_table("chat_pacing")
