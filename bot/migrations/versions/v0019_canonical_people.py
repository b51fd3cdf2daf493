"""canonical people: the CLI's bare names ("alice", "@alice") become the console user's ref "console:alice"

Before this, ``switchboard ... --as alice`` recorded "alice" while the console recorded "console:alice" for
the same person, so the self-approval rule, vote counting and "your runs" could take one person for two.
Rewrites who started each run, who asked for each approval, who cast each vote and who added each
outbound webhook. A vote cast under both
spellings on one request is one person's vote: the bare duplicate goes. The approval audit stays as it
was written (append-only).

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# (table, column): the people recorded by ref
PEOPLE = (
    ("runs", "started_by"),
    ("approvals", "requested_by"),
    ("approval_votes", "actor"),
    ("webhook_subscriptions", "created_by"),
)
BARE = "{c} NOT LIKE '%:%' AND {c} NOT IN ('', '@') AND length({c}) <= 190"
CANONICAL = "'console:' || CASE WHEN {c} LIKE '@%' THEN substr({c}, 2) ELSE {c} END"


def upgrade() -> None:
    votes = "approval_votes"
    op.execute(
        sa.text(
            f"DELETE FROM {votes} WHERE {BARE.format(c='actor')} AND EXISTS ("
            f"SELECT 1 FROM {votes} AS seen WHERE seen.approval_id = {votes}.approval_id "
            f"AND seen.actor = {CANONICAL.format(c=f'{votes}.actor')})"
        )
    )
    op.execute(  # "@alice" beside "alice" on one request: also one person
        sa.text(
            f"DELETE FROM {votes} WHERE actor LIKE '@%' AND EXISTS ("
            f"SELECT 1 FROM {votes} AS seen WHERE seen.approval_id = {votes}.approval_id "
            f"AND seen.actor = substr({votes}.actor, 2))"
        )
    )
    for table, column in PEOPLE:
        op.execute(
            sa.text(
                f"UPDATE {table} SET {column} = {CANONICAL.format(c=column)} WHERE {BARE.format(c=column)}"
            )
        )


def downgrade() -> None:
    """Nothing to undo: which refs were bare before cannot be told, and both spellings worked before."""
