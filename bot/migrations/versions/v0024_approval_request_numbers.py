"""approval request numbers: a retry of the run asks again as a new request in the same revision

Revision ID: 0024
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("request", sa.Integer, nullable=False, server_default="1"))
    # Until now every ask took the next revision number, so that number was the request number.
    op.execute("UPDATE approvals SET request = revision")
    with op.batch_alter_table("approvals") as batch:
        batch.drop_constraint("uq_approvals_revision", type_="unique")
        batch.create_unique_constraint("uq_approvals_request", ["run_id", "step_key", "request"])
    # The revision is 1 + the requests for changes before it; a retry's ask is not a revision.
    op.execute(
        "UPDATE approvals SET revision = 1 + (SELECT COUNT(*) FROM approvals b"
        " WHERE b.run_id = approvals.run_id AND b.step_key = approvals.step_key"
        " AND b.request < approvals.request AND b.status = 'changes')"
    )
    with op.batch_alter_table("step_runs") as batch:
        batch.add_column(sa.Column("revision", sa.Integer, nullable=False, server_default="0"))
    # An approval step already asked is on revision 1 + its requests for changes.
    op.execute(
        "UPDATE step_runs SET revision = 1 + (SELECT COUNT(*) FROM approvals a"
        " WHERE a.run_id = step_runs.run_id AND a.step_key = step_runs.key AND a.status = 'changes')"
        " WHERE EXISTS (SELECT 1 FROM approvals a"
        " WHERE a.run_id = step_runs.run_id AND a.step_key = step_runs.key)"
    )


def downgrade() -> None:
    with op.batch_alter_table("step_runs") as batch:
        batch.drop_column("revision")
    op.execute("UPDATE approvals SET revision = request")  # unique again, as the old key needs
    with op.batch_alter_table("approvals") as batch:
        batch.drop_constraint("uq_approvals_request", type_="unique")
        batch.drop_column("request")
        batch.create_unique_constraint("uq_approvals_revision", ["run_id", "step_key", "revision"])
