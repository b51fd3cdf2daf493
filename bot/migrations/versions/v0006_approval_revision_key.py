"""one approval request per step revision

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A request is unique per run, step and revision; the time it was made is not a key.
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_constraint("uq_approvals_step", type_="unique")
        batch_op.create_unique_constraint("uq_approvals_revision", ["run_id", "step_key", "revision"])


def downgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_constraint("uq_approvals_revision", type_="unique")
        batch_op.create_unique_constraint("uq_approvals_step", ["run_id", "step_key", "created_at"])
