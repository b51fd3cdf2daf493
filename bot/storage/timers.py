"""Timers: the one compare-and-set that fires a timer exactly once, whichever process's alarm rings first."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.tables import timers


async def claim_timer(conn: AsyncConnection, timer_id: int, now: float) -> bool:
    """Mark the timer fired in ``conn``'s transaction; True only for the one call that did.

    A caller acts on the timer in the same transaction, so a crash can never mark it fired without
    the action, and two processes can never both act on it.
    """
    won = await conn.execute(
        timers.update().where(timers.c.id == timer_id, timers.c.fired_at.is_(None)).values(fired_at=now)
    )
    return won.rowcount == 1
