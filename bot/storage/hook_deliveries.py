"""Webhook deliveries already accepted, so a replay of one (the same delivery id) is refused."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.tables import hook_deliveries


@dataclass(frozen=True)
class Seen:
    """An earlier delivery with the same id: when it came and the run it started."""

    received_at: float
    run_id: str | None


async def record_delivery(
    engine: AsyncEngine, hook: str, delivery_id: str, run_id: str, now: float, keep: float
) -> Seen | None:
    """Record a delivery about to start ``run_id``; None when it is new, else the earlier one (a replay).

    Expired rows are dropped in the same transaction (the delete first: SQLite's write lock is taken at once).
    """
    async with engine.begin() as conn:
        await conn.execute(hook_deliveries.delete().where(hook_deliveries.c.expires_at < now))
        try:
            async with conn.begin_nested():
                await conn.execute(
                    hook_deliveries.insert().values(
                        hook=hook,
                        delivery_id=delivery_id,
                        run_id=run_id,
                        received_at=now,
                        expires_at=now + keep,
                    )
                )
            return None
        except sa.exc.IntegrityError:
            pass
        key = sa.and_(hook_deliveries.c.hook == hook, hook_deliveries.c.delivery_id == delivery_id)
        row = (
            await conn.execute(
                sa.select(hook_deliveries.c.received_at, hook_deliveries.c.run_id).where(key)
            )
        ).first()
    return Seen(row.received_at, row.run_id) if row is not None else Seen(now, None)


async def forget_delivery(engine: AsyncEngine, hook: str, delivery_id: str) -> None:
    """Drop a delivery whose run could not be started, so the sender's retry is not taken for a replay."""
    key = sa.and_(hook_deliveries.c.hook == hook, hook_deliveries.c.delivery_id == delivery_id)
    async with engine.begin() as conn:
        await conn.execute(hook_deliveries.delete().where(key))


async def retake_delivery(
    engine: AsyncEngine, hook: str, delivery_id: str, old_run: str | None, new_run: str, now: float
) -> bool:
    """Take over a delivery whose run was never stored (its process failed between the two writes): a
    compare-and-set on the run it names, so of two retries only one starts a run."""
    key = sa.and_(
        hook_deliveries.c.hook == hook,
        hook_deliveries.c.delivery_id == delivery_id,
        hook_deliveries.c.run_id.is_(None) if old_run is None else hook_deliveries.c.run_id == old_run,
    )
    async with engine.begin() as conn:
        moved = await conn.execute(
            hook_deliveries.update().where(key).values(run_id=new_run, received_at=now)
        )
    return bool(moved.rowcount == 1)
