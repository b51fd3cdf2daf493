"""The tables of conversations with the assistant and human agents (same metadata as ``tables``)."""

from __future__ import annotations

import sqlalchemy as sa

from bot.storage.tables import metadata

# One conversation: who wrote, where, which state it is in, and the handover's details.
conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("platform", sa.String(20), nullable=False),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("thread", sa.String(200)),  # the user-side thread's parent message ref (None in a DM)
    sa.Column("place_key", sa.String(420), nullable=False),
    sa.Column("user_ref", sa.String(200), nullable=False, index=True),
    sa.Column("user", sa.JSON, nullable=False),  # the Identity, as to_dict() wrote it
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, default=1),
    sa.Column("priority", sa.Integer, nullable=False, default=1),  # 0 low, 1 normal, 2 high, 3 urgent
    sa.Column("skills", sa.JSON, nullable=False, default=list),
    sa.Column("reason", sa.String(60)),
    sa.Column("summary", sa.Text),
    sa.Column("tried", sa.Text),
    sa.Column("suggested", sa.Text),
    sa.Column("agent_ref", sa.String(200), index=True),
    sa.Column("agent_name", sa.String(200)),
    sa.Column("offered_to", sa.String(200)),  # a transfer to a named agent
    sa.Column("turns", sa.Integer, nullable=False, default=0),
    sa.Column("turn_owner", sa.String(200)),  # the process running the assistant's next turn
    sa.Column("turn_until", sa.Float),  # ... until then (a dead owner's claim lapses sooner)
    sa.Column("failures", sa.Integer, nullable=False, default=0),  # consecutive failed AI attempts
    sa.Column("handovers", sa.Integer, nullable=False, default=0),
    sa.Column("pings", sa.Integer, nullable=False, default=0),  # re-pings of the agents while queued
    sa.Column("escalated", sa.Boolean, nullable=False, default=False),
    sa.Column("reminded", sa.Boolean, nullable=False, default=False),  # the silent agent was reminded
    sa.Column("warned", sa.Boolean, nullable=False, default=False),  # the silent user was warned
    sa.Column("note", sa.Text),  # the agent's note when handing back to the AI
    sa.Column("resolution", sa.Text),
    sa.Column("memory_summary", sa.Text),  # the rolling summary of older messages
    sa.Column("summarized_through", sa.Integer, nullable=False, default=0),  # last message id it covers
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("queued_at", sa.Float),
    sa.Column("claimed_at", sa.Float),
    sa.Column("first_human_at", sa.Float),
    sa.Column("closed_at", sa.Float, index=True),
    sa.Column("last_user_at", sa.Float),
    sa.Column("last_agent_at", sa.Float),
    sa.Column("last_bot_at", sa.Float),
    sa.Column("workflow", sa.String(200)),  # the workflow the assistant last ran in it (hand-over rules)
    sa.Column("rating", sa.Integer),  # the user's 1-5 after it was resolved; set once
    sa.Column("rated_at", sa.Float),
    sa.Column("prompt_tokens", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("completion_tokens", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("ai_seconds", sa.Float, nullable=False, default=0.0, server_default="0"),  # in assistant turns
    # At most one open conversation per place: a race between two first messages makes one row.
    sa.Index(
        "ux_conversations_open_place",
        "place_key",
        unique=True,
        sqlite_where=sa.text("closed_at IS NULL"),
        postgresql_where=sa.text("closed_at IS NULL"),
    ),
    sa.Index("ix_conversations_state", "state", "queued_at"),
)

# Every message said in a conversation, by the user, the assistant, an agent, or Switchboard itself.
conversation_messages = sa.Table(
    "conversation_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(32), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("role", sa.String(12), nullable=False),  # user | assistant | agent | note | system | tool
    sa.Column("author_ref", sa.String(200)),
    sa.Column("author_name", sa.String(200)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("turn", sa.Integer),  # a user message: the assistant turn that read it (None: not yet)
    sa.Column("event_key", sa.String(200)),  # the platform's delivery id: a retried event is one message
    sa.Index("ix_conversation_messages_conv", "conversation_id", "id"),
    sa.Index("ux_conversation_messages_event", "event_key", unique=True),
)

# Append-only: every transition and every refused or notable action.
conversation_events = sa.Table(
    "conversation_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(32), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("from_state", sa.String(20)),
    sa.Column("to_state", sa.String(20)),
    sa.Column("detail", sa.JSON, nullable=False, default=dict),
)

# Human agents: availability, skills and capacity.
agents = sa.Table(
    "agents",
    metadata,
    sa.Column("ref", sa.String(200), primary_key=True),  # platform:user_id
    sa.Column("platform", sa.String(20), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("available", sa.Boolean, nullable=False, default=False),
    sa.Column("skills", sa.JSON, nullable=False, default=list),
    sa.Column("capacity", sa.Integer, nullable=False, default=3),
    sa.Column("idle_since", sa.Float, nullable=False, default=0.0),  # last assignment or availability
    sa.Column("updated_at", sa.Float, nullable=False),
)

# What the assistant learned in a conversation ("service: payments"), each fact with an expiry.
conversation_memory = sa.Table(
    "conversation_memory",
    metadata,
    sa.Column("conversation_id", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(80), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

# Transcripts of resolved conversations.
conversation_transcripts = sa.Table(
    "conversation_transcripts",
    metadata,
    sa.Column("conversation_id", sa.String(32), primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)
