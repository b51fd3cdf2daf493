"""run-level exclusion groups: the group a run queues in (one admitted at a time, oldest first)

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("exclusive", sa.String(length=200), nullable=True))
        batch.create_index("ix_runs_exclusive", ["exclusive"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_exclusive")
        batch.drop_column("exclusive")
