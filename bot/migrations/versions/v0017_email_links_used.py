"""email_links_used: the approval e-mail links that have cast their vote, so each counts once

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_links_used",
        sa.Column("link_id", sa.String(length=64), primary_key=True),
        sa.Column("approval_id", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_email_links_used_approval_id", "email_links_used", ["approval_id"])


def downgrade() -> None:
    op.drop_index("ix_email_links_used_approval_id", table_name="email_links_used")
    op.drop_table("email_links_used")
