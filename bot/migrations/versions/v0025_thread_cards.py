"""thread cards: a card edited in place that lives in the thread of another card (an llm step's text)

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chat_cards") as batch:
        batch.add_column(sa.Column("parent_key", sa.String(200)))


def downgrade() -> None:
    op.execute("DELETE FROM chat_cards WHERE parent_key IS NOT NULL")  # the old outbox would post them loose
    with op.batch_alter_table("chat_cards") as batch:
        batch.drop_column("parent_key")
