"""Timers: the one compare-and-set that fires a timer exactly once, whichever process's alarm rings first;
the due timers a run's alarm reads; and one pending timer per conversation, at its earliest deadline."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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


class RunTimers:
    """Due timers and firing a run's timer; part of RunStore (which supplies ``engine``, ``insert_inbox``)."""

    engine: AsyncEngine
    insert_inbox: sa.Insert

    async def timers_due_before(
        self, moment: float, run_ids: list[str] | None = None
    ) -> list[tuple[int, float, str, str | None]]:
        """Unfired timers due before ``moment`` (of ``run_ids`` only, when given): (id, due_at, kind, ref)."""
        query = (
            sa.select(timers.c.id, timers.c.due_at, timers.c.kind, timers.c.ref)
            .where(timers.c.fired_at.is_(None), timers.c.due_at <= moment)
            .order_by(timers.c.due_at)
        )
        if run_ids is not None:
            query = query.where(timers.c.run_id.in_(run_ids))
        async with self.engine.connect() as conn:
            return [(r.id, r.due_at, r.kind, r.ref) for r in (await conn.execute(query)).all()]

    async def fire_timer(self, timer_id: int, now: float) -> tuple[str, str, str, str | None] | None:
        """Mark a timer fired (compare-and-set); return (run_id, step_key, kind, ref) if this call won."""
        async with self.engine.begin() as conn:
            if not await claim_timer(conn, timer_id, now):
                return None
            row = (
                await conn.execute(
                    sa.select(timers.c.run_id, timers.c.step_key, timers.c.kind, timers.c.ref).where(
                        timers.c.id == timer_id
                    )
                )
            ).one()
            signal = {"key": row.step_key, "kind": row.kind, "ref": row.ref}
            await conn.execute(
                self.insert_inbox,
                {"run_id": row.run_id, "kind": "timer", "payload": signal, "created_at": now},
            )
        return row.run_id, row.step_key, row.kind, row.ref


async def arm_earliest(conn: AsyncConnection, owner: str, kind: str, due_at: float) -> None:
    """Keep one pending ``kind`` timer for ``owner`` (a run or conversation id), at its earliest deadline.

    A later pending one is replaced, an earlier one kept (when it rings, its handler arms the next). The
    delete comes first, so the transaction starts with a write even as its first statement (SQLite's
    lock rule).
    """
    pending = sa.and_(timers.c.run_id == owner, timers.c.kind == kind, timers.c.fired_at.is_(None))
    await conn.execute(timers.delete().where(pending, timers.c.due_at > due_at))
    if (await conn.execute(sa.select(timers.c.id).where(pending).limit(1))).first() is not None:
        return
    row = {"run_id": owner, "step_key": kind, "kind": kind, "ref": owner, "due_at": due_at}
    await conn.execute(timers.insert(), row)
