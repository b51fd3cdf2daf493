"""remote runners: the runners that connected, one job per remote step attempt, and runner tokens' labels

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("runner_labels", sa.JSON, nullable=True))
    op.create_table(
        "runners",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("token_id", sa.String(32), nullable=False, index=True),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("busy", sa.Integer, nullable=False),
        sa.Column("registered_at", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False, index=True),
    )
    op.create_table(
        "runner_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False, index=True),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("compensation", sa.Boolean, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON),
        sa.Column("idempotency_key", sa.String(300), nullable=False),
        sa.Column("secret_nonce", sa.String(32), nullable=False),
        sa.Column("timeout", sa.Float),
        sa.Column("status", sa.String(12), nullable=False, index=True),
        sa.Column("runner_id", sa.String(32), index=True),
        sa.Column("runner_name", sa.String(80)),
        sa.Column("lease_until", sa.Float),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("outcome", sa.JSON),
        sa.Column("consumed", sa.Boolean, nullable=False),
        sa.Column("output", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("taken_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.UniqueConstraint("run_id", "step", "attempt", "compensation", name="uq_runner_jobs_attempt"),
    )


def downgrade() -> None:
    op.drop_table("runner_jobs")
    op.drop_table("runners")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("runner_labels")
