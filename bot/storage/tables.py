"""Every table Switchboard keeps, as SQLAlchemy Core tables (the migrations create the same)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Times are epoch seconds as floats: portable between SQLite and PostgreSQL, cheap to compare.

workflow_versions = sa.Table(
    "workflow_versions",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(80), nullable=False, index=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("workflow", sa.String(80), nullable=False, index=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("parent_run_id", sa.String(64), index=True),
    sa.Column("parent_step", sa.String(200)),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("outputs", sa.JSON),
    sa.Column("error", sa.Text),
    sa.Column("failed_step", sa.String(200)),
    sa.Column("started_by", sa.String(200), nullable=False),
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("rollback_to", sa.String(200)),
    sa.Column("finish_counter", sa.Integer, nullable=False, default=0),
    sa.Column("event_seq", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_until", sa.Float),
)

step_runs = sa.Table(
    "step_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("step_id", sa.String(100), nullable=False),
    sa.Column("idx", sa.Integer),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("outputs", sa.JSON),
    sa.Column("error", sa.Text),
    sa.Column("error_kind", sa.String(20)),
    sa.Column("tolerated", sa.Boolean, nullable=False, default=False),
    sa.Column("waiting_on", sa.String(20)),
    sa.Column("wake_at", sa.Float),
    sa.Column("finish_seq", sa.Integer, nullable=False, default=0),
    sa.Column("compensation", sa.String(20)),
    sa.Column("items", sa.JSON),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("step_key", sa.String(200)),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.UniqueConstraint("run_id", "seq", name="uq_events_run_seq"),
)

timers = sa.Table(
    "timers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("step_key", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("ref", sa.String(64)),  # an approval id, for approval timeouts
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("fired_at", sa.Float),
    sa.Index("ix_timers_pending", "fired_at", "due_at"),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("consumed_at", sa.Float),
    sa.Index("ix_inbox_open", "consumed_at", "run_id"),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("step_key", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("context", sa.JSON, nullable=False),
    sa.Column("approvers", sa.JSON, nullable=False),
    sa.Column("required", sa.Integer, nullable=False),
    sa.Column("allow_self_approval", sa.Boolean, nullable=False),
    sa.Column("requested_by", sa.String(200), nullable=False),
    sa.Column("on_timeout", sa.String(20), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float),
    sa.Column("decided_at", sa.Float),
    sa.Column("version", sa.Integer, nullable=False, default=0),
    sa.UniqueConstraint("run_id", "step_key", "created_at", name="uq_approvals_step"),
)

approval_votes = sa.Table(
    "approval_votes",
    metadata,
    sa.Column("approval_id", sa.String(64), primary_key=True),
    sa.Column("actor", sa.String(200), primary_key=True),
    sa.Column("decision", sa.String(20), nullable=False),
    sa.Column("comment", sa.Text),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
)

# Append-only: no code path updates or deletes these rows.
approval_audit = sa.Table(
    "approval_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("approval_id", sa.String(64), nullable=False, index=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(30), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
)
