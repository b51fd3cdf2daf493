"""runs: how many loads in a row did not make progress (quarantine of a run that crashes the process)

Also an index on runs.lease_owner: every process reads the distinct lease holders each second to take
over the runs of a dead process on its host.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("load_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_runs_lease_owner", ["lease_owner"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_lease_owner")
        batch.drop_column("load_attempts")
