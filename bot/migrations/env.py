"""Alembic environment: runs on the connection Switchboard hands over (see bot.storage.database)."""

from __future__ import annotations

from alembic import context

from bot.storage.conversations import tables as conversation_tables  # noqa: F401  (its tables join the metadata)
from bot.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `switchboard db upgrade`, which supplies the connection")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
