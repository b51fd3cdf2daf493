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
    sa.Column("rewind_to", sa.String(200)),  # while a rewind compensates: the step it goes back to
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("lease_owner", sa.String(200), index=True),
    sa.Column("lease_until", sa.Float),
    # Loads since the run last made progress; a run that keeps crashing its process is quarantined.
    sa.Column("load_attempts", sa.Integer, nullable=False, default=0, server_default="0"),
    # The run's exclusion group (``exclusive:`` rendered at start): one run of a group is admitted at a time.
    sa.Column("exclusive", sa.String(200), index=True),
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
    # An approval step's revision (engine/state.py): a retry asks again in it, "Request changes" moves on.
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
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
    # A due timer is claimed by one process's alarm, which fires it; a claim that lapses (its process died)
    # lets another alarm fire it. Firing itself is the compare-and-set on ``fired_at``.
    sa.Column("claimed_by", sa.String(200)),
    sa.Column("claim_until", sa.Float),
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
    sa.Column("kind", sa.String(20), nullable=False, server_default="binary"),
    sa.Column("veto", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("channel", sa.String(200)),
    sa.Column("notify", sa.String(20), nullable=False, server_default="channel"),
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    # The step's n-th ask: a retry of the run asks again in the same revision, as a new request.
    sa.Column("request", sa.Integer, nullable=False, server_default="1"),
    sa.Column("max_revisions", sa.Integer, nullable=False, server_default="3"),
    sa.Column("can_revise", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("form", sa.JSON),
    sa.Column("escalation", sa.JSON),
    sa.Column("auto_reason", sa.Text),
    sa.UniqueConstraint("run_id", "step_key", "request", name="uq_approvals_request"),
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

# -- chat layer ------------------------------------------------------------------------------------
# A card edited in place (a run's status card): one row, its newest content and how far it was sent.
chat_cards = sa.Table(
    "chat_cards",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),  # "run:<id>", "llm:<run id>:<step>:<attempt>"
    sa.Column("platform", sa.String(20), nullable=False),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("card", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("sent_version", sa.Integer, nullable=False, default=0),
    sa.Column("message_ref", sa.String(200)),
    sa.Column("thread_ref", sa.String(200)),
    sa.Column("claimed_by", sa.String(200)),
    sa.Column("claimed_at", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_at", sa.Float, nullable=False, default=0.0),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", sa.Float, nullable=False),
    # How often the first post was tried: above one, an earlier try may have reached the platform.
    sa.Column("post_tries", sa.Integer, nullable=False, default=0, server_default="0"),
    # A card that lives in the thread of this card (an llm step's text under its run's status card).
    sa.Column("parent_key", sa.String(200)),
    sa.Index("ix_chat_cards_due", "next_at"),
    sa.Index("ix_chat_cards_message", "message_ref"),  # a reply in a card's thread finds its card
)

# A message posted once (a thread reply, a notification), delivered in order per card.
chat_posts = sa.Table(
    "chat_posts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("platform", sa.String(20), nullable=False),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("parent_key", sa.String(200)),  # the chat_cards key whose thread this goes into
    sa.Column("thread_ref", sa.String(200)),  # or a message of the platform's whose thread this goes into
    sa.Column("card", sa.JSON, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # pending | sending | sent | failed
    sa.Column("message_ref", sa.String(200)),
    sa.Column("claimed_by", sa.String(200)),
    sa.Column("claimed_at", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_at", sa.Float, nullable=False, default=0.0),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("sent_at", sa.Float),
    sa.Index("ix_chat_posts_open", "status", "next_at"),
)

# When the next message of each lane (a channel's posts, a workspace's edits) may go, shared by every
# process when Redis is not configured: the theoretical arrival time of a GCRA token bucket.
chat_pacing = sa.Table(
    "chat_pacing",
    metadata,
    sa.Column("lane", sa.String(300), primary_key=True),  # "slack:C0OPS:post", "slack:*:edit"
    sa.Column("next_allowed_at", sa.Float, nullable=False),
)

# The console's own messages: the console is a chat platform whose server is Switchboard itself.
console_messages = sa.Table(
    "console_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(100), nullable=False),
    sa.Column("thread_id", sa.Integer),  # the parent message, for thread replies
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("card", sa.JSON),
    sa.Column("visible_to", sa.String(200)),  # an ephemeral message's only reader
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("key", sa.String(200)),  # the outbox item's key, so a re-sent post is found, not doubled
    sa.Index("ix_console_channel", "channel", "id"),
    sa.Index("ux_console_key", "key", unique=True),
)

# Platform deliveries already handled (Slack's event_id), when Redis is not configured.
seen_events = sa.Table(
    "seen_events",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)

# Signed requests already handled (Slack's signature and timestamp), when Redis is not configured:
# a replay of the same bytes inside Slack's 5-minute window is acknowledged and ignored.
seen_requests = sa.Table(
    "seen_requests",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)

# Tokens for machines (CI, the REST API): only a hash of the secret is kept; revoked rows stay, as a record.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(80), nullable=False, unique=True),  # never reused, so logs name one token
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("identity", sa.JSON, nullable=False),  # who the token acts as (Identity.to_dict)
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used_at", sa.Float),
    sa.Column("revoked_at", sa.Float),
    sa.Column("runner_labels", sa.JSON),  # a runner token: the labels whose jobs it may take
)

# Append-only: every chat action with the identity that took it.
action_log = sa.Table(
    "action_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False, index=True),
    sa.Column("identity", sa.JSON, nullable=False),
    sa.Column("place", sa.JSON, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # command | click | submit
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("outcome", sa.String(40), nullable=False),
    sa.Column("run_id", sa.String(64), index=True),
)

# Secrets Switchboard makes for itself on first start (the web session key), shared by every process.
web_secrets = sa.Table(
    "web_secrets",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# An approval e-mail's link that has cast its vote: a link counts once (its id is a digest of the link).
email_links_used = sa.Table(
    "email_links_used",
    metadata,
    sa.Column("link_id", sa.String(64), primary_key=True),
    sa.Column("approval_id", sa.String(64), nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("decision", sa.String(20), nullable=False),
    sa.Column("used_at", sa.Float, nullable=False),
)

# A step program started and not yet seen to end: who started it where, so a resume can kill its orphan.
step_processes = sa.Table(
    "step_processes",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("step", sa.String(200), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("compensation", sa.Boolean, primary_key=True),
    sa.Column("pgid", sa.Integer),  # null until the program has started
    sa.Column("pid", sa.Integer),
    sa.Column("boot_id", sa.String(64), nullable=False),
    sa.Column("start_ticks", sa.BigInteger),  # /proc/<pid>/stat field 22: with boot_id, tells a reused pid
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
)

# Outbound webhooks: who hears which events (each pattern kept in LIKE form, so the commit that makes an
# event fans it out with one INSERT ... SELECT), the deliveries queued for the outbox, and each attempt.
webhook_subscriptions = sa.Table(
    "webhook_subscriptions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", sa.JSON, nullable=False),  # the patterns as given: ["run.finished", "approval.*"]
    sa.Column("secret", sa.String(100), nullable=False),  # whsec_<base64>: the receiver verifies with it
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

webhook_filters = sa.Table(
    "webhook_filters",
    metadata,
    sa.Column("subscription_id", sa.String(40), primary_key=True),
    sa.Column("pattern", sa.String(100), primary_key=True),  # LIKE form: "run.%", "run.finished"
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscription_id", sa.String(40), nullable=False, index=True),
    sa.Column("message_id", sa.String(40), nullable=False),  # webhook-id: the same on every retry
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # exactly the bytes signed and sent
    sa.Column("status", sa.String(20), nullable=False),  # pending | sending | delivered | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("claimed_by", sa.String(200)),
    sa.Column("claimed_at", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("first_attempt_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Index("ix_webhook_deliveries_open", "status", "next_at"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.Integer, nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("took", sa.Float, nullable=False),
    sa.Column("status_code", sa.Integer),  # null when no answer came (refused, timed out, unreachable)
    sa.Column("response", sa.Text),  # the first bytes of the answer
    sa.Column("error", sa.Text),
)

# Webhook deliveries already accepted (GitHub's X-GitHub-Delivery, Standard Webhooks' webhook-id): a replay
# of one is refused. Rows are kept until ``expires_at``, longer than any sender retries.
hook_deliveries = sa.Table(
    "hook_deliveries",
    metadata,
    sa.Column("hook", sa.String(80), primary_key=True),
    sa.Column("delivery_id", sa.String(200), primary_key=True),
    sa.Column("run_id", sa.String(64)),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)

# A workflow's schedule entry and when it next fires; a timer of kind "schedule" (ref = id) rings at next_at.
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # from the workflow's name and the entry's position
    sa.Column("workflow", sa.String(80), nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),  # the entry's cron, zone, policy and inputs
    sa.Column("cron", sa.String(200), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("missed", sa.String(20), nullable=False),
    sa.Column("next_at", sa.Float),  # null: the entry was removed from its workflow
    sa.Column("last_fired_at", sa.Float),
    sa.Column("last_run_id", sa.String(64)),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# A POST to the REST API sent with an Idempotency-Key: the run it started, so a retry starts no second one.
api_idempotency = sa.Table(
    "api_idempotency",
    metadata,
    sa.Column("actor", sa.String(200), primary_key=True),  # keys are per caller: two callers never collide
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),  # the same key with another body is refused
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
)

# Remote runners (bot/storage/runner_jobs.py): each registration, and one job per remote step attempt,
# queued with the commit that starts the step, leased to one runner while it heart-beats.
runners = sa.Table(
    "runners",
    metadata,
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

runner_jobs = sa.Table(
    "runner_jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("step", sa.String(200), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("compensation", sa.Boolean, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("params", sa.JSON),  # rendered, secrets included: erased when the job ends
    sa.Column("idempotency_key", sa.String(300), nullable=False),
    sa.Column("secret_nonce", sa.String(32), nullable=False),  # secrets in params are markers (job_secrets)
    sa.Column("timeout", sa.Float),
    sa.Column("status", sa.String(12), nullable=False, index=True),  # queued|leased|done|lost|cancelled
    sa.Column("runner_id", sa.String(32), index=True),
    sa.Column("runner_name", sa.String(80)),
    sa.Column("lease_until", sa.Float),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("outcome", sa.JSON),  # {"ok": bool, "result": {...}, "kind": ..., "message": ...}
    sa.Column("consumed", sa.Boolean, nullable=False),  # the run has taken the outcome in
    sa.Column("output", sa.Text),  # the tail of the lines the runner streamed
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("taken_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.UniqueConstraint("run_id", "step", "attempt", "compensation", name="uq_runner_jobs_attempt"),
)
