"""triggers: webhook deliveries seen (replays refused) and schedules with their next fire time

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hook_deliveries",
        sa.Column("hook", sa.String(length=80), nullable=False),
        sa.Column("delivery_id", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("hook", "delivery_id"),
    )
    with op.batch_alter_table("hook_deliveries") as batch:
        batch.create_index(batch.f("ix_hook_deliveries_expires_at"), ["expires_at"], unique=False)
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("workflow", sa.String(length=80), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("cron", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("missed", sa.String(length=20), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=True),
        sa.Column("last_fired_at", sa.Float(), nullable=True),
        sa.Column("last_run_id", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("schedules") as batch:
        batch.create_index(batch.f("ix_schedules_workflow"), ["workflow"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.drop_index(batch.f("ix_schedules_workflow"))
    op.drop_table("schedules")
    with op.batch_alter_table("hook_deliveries") as batch:
        batch.drop_index(batch.f("ix_hook_deliveries_expires_at"))
    op.drop_table("hook_deliveries")
