"""step_processes: each running step program's group, pid, start time and host boot, for killing orphans

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "step_processes",
        sa.Column("run_id", sa.String(length=64), primary_key=True),
        sa.Column("step", sa.String(length=200), primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True),
        sa.Column("compensation", sa.Boolean(), primary_key=True),
        sa.Column("pgid", sa.Integer(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("boot_id", sa.String(length=64), nullable=False),
        sa.Column("start_ticks", sa.BigInteger(), nullable=True),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("step_processes")
