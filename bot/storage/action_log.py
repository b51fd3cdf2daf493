"""The action log: one row for every command, click and form a person sent, with its outcome."""

from __future__ import annotations

from typing import Any

from bot.storage.journal import Batch, Journal
from bot.storage.tables import action_log

INSERT = action_log.insert()


async def record_action(journal: Journal, row: dict[str, Any]) -> None:
    """Append one action: who, where, what (``kind``, ``detail``), its ``outcome`` and ``run_id``.

    Through the journal, so the actions of many people at once share a commit (with each other and
    with the runs' steps) instead of each taking SQLite's write lock in a transaction of its own;
    it returns once the row is committed, as before.
    """
    batch = Batch()
    batch.add(INSERT, row)
    await journal.write(batch)
