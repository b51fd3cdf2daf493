"""Who holds a run's lease now: read before a claim, so a claim that takes a run over can be counted."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.tables import runs


async def lease_holder(engine: AsyncEngine, run_id: str) -> str | None:
    """The process holding the run's lease (lapsed or not), or None when nobody does."""
    query = sa.select(runs.c.lease_owner).where(runs.c.id == run_id)
    async with engine.connect() as conn:
        owner = (await conn.execute(query)).scalar()
    return None if owner is None else str(owner)
