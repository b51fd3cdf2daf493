"""conversations, agents and their memory; posts into a given thread

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("idle_since", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("ref"),
    )
    op.create_table(
        "conversation_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("from_state", sa.String(length=20), nullable=True),
        sa.Column("to_state", sa.String(length=20), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("conversation_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conversation_events_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_conversation_events_conversation_id"), ["conversation_id"], unique=False
        )

    op.create_table(
        "conversation_memory",
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "key"),
    )
    op.create_table(
        "conversation_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.Column("author_ref", sa.String(length=200), nullable=True),
        sa.Column("author_name", sa.String(length=200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=True),
        sa.Column("event_key", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("conversation_messages", schema=None) as batch_op:
        batch_op.create_index("ix_conversation_messages_conv", ["conversation_id", "id"], unique=False)
        batch_op.create_index("ux_conversation_messages_event", ["event_key"], unique=True)

    op.create_table(
        "conversation_transcripts",
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id"),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("thread", sa.String(length=200), nullable=True),
        sa.Column("place_key", sa.String(length=420), nullable=False),
        sa.Column("user_ref", sa.String(length=200), nullable=False),
        sa.Column("user", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=60), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("tried", sa.Text(), nullable=True),
        sa.Column("suggested", sa.Text(), nullable=True),
        sa.Column("agent_ref", sa.String(length=200), nullable=True),
        sa.Column("agent_name", sa.String(length=200), nullable=True),
        sa.Column("offered_to", sa.String(length=200), nullable=True),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("handovers", sa.Integer(), nullable=False),
        sa.Column("pings", sa.Integer(), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("reminded", sa.Boolean(), nullable=False),
        sa.Column("warned", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("memory_summary", sa.Text(), nullable=True),
        sa.Column("summarized_through", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("queued_at", sa.Float(), nullable=True),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.Column("first_human_at", sa.Float(), nullable=True),
        sa.Column("closed_at", sa.Float(), nullable=True),
        sa.Column("last_user_at", sa.Float(), nullable=True),
        sa.Column("last_agent_at", sa.Float(), nullable=True),
        sa.Column("last_bot_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conversations_agent_ref"), ["agent_ref"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversations_closed_at"), ["closed_at"], unique=False)
        batch_op.create_index("ix_conversations_state", ["state", "queued_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversations_user_ref"), ["user_ref"], unique=False)
        batch_op.create_index(
            "ux_conversations_open_place",
            ["place_key"],
            unique=True,
            sqlite_where=sa.text("closed_at IS NULL"),
            postgresql_where=sa.text("closed_at IS NULL"),
        )

    with op.batch_alter_table("chat_cards", schema=None) as batch_op:
        batch_op.create_index("ix_chat_cards_message", ["message_ref"], unique=False)

    with op.batch_alter_table("chat_posts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("thread_ref", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chat_posts", schema=None) as batch_op:
        batch_op.drop_column("thread_ref")

    with op.batch_alter_table("chat_cards", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_cards_message")

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index(
            "ux_conversations_open_place",
            sqlite_where=sa.text("closed_at IS NULL"),
            postgresql_where=sa.text("closed_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_conversations_user_ref"))
        batch_op.drop_index("ix_conversations_state")
        batch_op.drop_index(batch_op.f("ix_conversations_closed_at"))
        batch_op.drop_index(batch_op.f("ix_conversations_agent_ref"))

    op.drop_table("conversations")
    op.drop_table("conversation_transcripts")
    with op.batch_alter_table("conversation_messages", schema=None) as batch_op:
        batch_op.drop_index("ux_conversation_messages_event")
        batch_op.drop_index("ix_conversation_messages_conv")

    op.drop_table("conversation_messages")
    op.drop_table("conversation_memory")
    with op.batch_alter_table("conversation_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_events_conversation_id"))
        batch_op.drop_index(batch_op.f("ix_conversation_events_at"))

    op.drop_table("conversation_events")
    op.drop_table("agents")
