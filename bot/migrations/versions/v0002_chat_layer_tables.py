"""chat layer tables

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "action_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("identity", sa.JSON(), nullable=False),
        sa.Column("place", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("action_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_action_log_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_action_log_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_action_log_run_id"), ["run_id"], unique=False)

    op.create_table(
        "chat_cards",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sent_version", sa.Integer(), nullable=False),
        sa.Column("message_ref", sa.String(length=200), nullable=True),
        sa.Column("thread_ref", sa.String(length=200), nullable=True),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("chat_cards", schema=None) as batch_op:
        batch_op.create_index("ix_chat_cards_due", ["next_at"], unique=False)

    op.create_table(
        "chat_posts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("parent_key", sa.String(length=200), nullable=True),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("message_ref", sa.String(length=200), nullable=True),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("chat_posts", schema=None) as batch_op:
        batch_op.create_index("ix_chat_posts_open", ["status", "next_at"], unique=False)

    op.create_table(
        "console_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=True),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("card", sa.JSON(), nullable=True),
        sa.Column("visible_to", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("console_messages", schema=None) as batch_op:
        batch_op.create_index("ix_console_channel", ["channel", "id"], unique=False)

    op.create_table(
        "seen_events",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("seen_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seen_events_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("seen_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seen_events_expires_at"))

    op.drop_table("seen_events")
    with op.batch_alter_table("console_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_console_channel")

    op.drop_table("console_messages")
    with op.batch_alter_table("chat_posts", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_posts_open")

    op.drop_table("chat_posts")
    with op.batch_alter_table("chat_cards", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_cards_due")

    op.drop_table("chat_cards")
    with op.batch_alter_table("action_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_log_run_id"))
        batch_op.drop_index(batch_op.f("ix_action_log_at"))
        batch_op.drop_index(batch_op.f("ix_action_log_actor"))

    op.drop_table("action_log")
