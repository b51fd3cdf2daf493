"""conversations: the process holding the assistant's turn, and until when

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("turn_owner", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("turn_until", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("turn_until")
        batch.drop_column("turn_owner")
