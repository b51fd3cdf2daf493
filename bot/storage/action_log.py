"""The action log: one row for every command, click and form a person sent, with its outcome."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.tables import action_log


async def record_action(engine: AsyncEngine, row: dict[str, Any]) -> None:
    """Append one action: who, where, what (``kind``, ``detail``), its ``outcome`` and ``run_id``."""
    async with engine.begin() as conn:
        await conn.execute(action_log.insert(), row)
