"""Schedule rows: each declared schedule entry and when it next fires, kept beside its ``schedule`` timer.

Every write to a row goes through one compare-and-set on ``next_at`` (or an update that takes the row's lock
first), so two processes syncing or firing the same entry at once serialise on it, and it keeps one timer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.storage.tables import schedules, timers
from bot.storage.timers import arm_earliest, claim_timer

KIND = "schedule"


@dataclass(frozen=True)
class ScheduleRow:
    """A stored schedule entry."""

    id: str
    workflow: str
    position: int
    fingerprint: str
    cron: str
    timezone: str
    missed: str
    next_at: float | None
    last_fired_at: float | None
    last_run_id: str | None


def _insert(conn: AsyncConnection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert(schedules)


async def sync_entry(engine: AsyncEngine, row: dict[str, Any], first_at: float, now: float) -> float:
    """Store a declared entry and keep its timer; returns its next fire time.

    A new entry, or one whose fingerprint changed, fires next at ``first_at``; an unchanged one keeps its
    stored ``next_at``, even one in the past: that fire was missed, and its timer rings at once.
    """
    async with engine.begin() as conn:
        new = {**row, "next_at": first_at, "updated_at": now}
        await conn.execute(_insert(conn).values(new).on_conflict_do_nothing(index_elements=["id"]))
        # The update takes the row's lock: a second process syncing it waits here, then sees the first's
        # timer.
        await conn.execute(schedules.update().where(schedules.c.id == row["id"]).values(updated_at=now))
        stored = (await conn.execute(sa.select(schedules).where(schedules.c.id == row["id"]))).one()
        next_at = stored.next_at
        if stored.fingerprint != row["fingerprint"] or next_at is None:
            next_at = first_at
            await conn.execute(schedules.update().where(schedules.c.id == row["id"]).values(new))
            await _drop_timers(conn, row["id"])
        await arm_earliest(conn, row["id"], KIND, next_at)
    return float(next_at)


async def retire_others(engine: AsyncEngine, keep: set[str], now: float) -> None:
    """Entries no longer declared by any workflow stop firing (their rows stay, as a record)."""
    async with engine.begin() as conn:
        gone = sa.and_(schedules.c.next_at.is_not(None), schedules.c.id.not_in(keep) if keep else sa.true())
        ids = list(
            (
                await conn.execute(
                    sa.update(schedules)
                    .where(gone)
                    .values(next_at=None, updated_at=now)
                    .returning(schedules.c.id)
                )
            ).scalars()
        )
        for schedule_id in ids:
            await _drop_timers(conn, schedule_id)


async def _drop_timers(conn: AsyncConnection, schedule_id: str) -> None:
    pending = sa.and_(timers.c.run_id == schedule_id, timers.c.kind == KIND, timers.c.fired_at.is_(None))
    await conn.execute(timers.delete().where(pending))


async def schedule_row(engine: AsyncEngine, schedule_id: str) -> ScheduleRow | None:
    """One stored entry."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(schedules).where(schedules.c.id == schedule_id))).first()
    return _row(row) if row is not None else None


async def list_schedules(engine: AsyncEngine) -> list[ScheduleRow]:
    """Every stored entry, by workflow and position."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(sa.select(schedules).order_by(schedules.c.workflow, schedules.c.position))
        ).all()
    return [_row(r) for r in rows]


async def advance(
    engine: AsyncEngine,
    timer_id: int,
    schedule_id: str,
    due: float,
    next_at: float,
    run_id: str | None,
    now: float,
) -> bool:
    """Mark the timer fired and move the entry from ``due`` to ``next_at`` (arming its timer), in one
    transaction; False when another process did it first (the timer, or the entry, moved on)."""
    async with engine.begin() as conn:
        if not await claim_timer(conn, timer_id, now):
            return False
        values: dict[str, Any] = {"next_at": next_at, "updated_at": now}
        if run_id is not None:
            values.update(last_fired_at=now, last_run_id=run_id)
        moved = await conn.execute(
            schedules.update().where(schedules.c.id == schedule_id, schedules.c.next_at == due).values(values)
        )
        if moved.rowcount != 1:
            return False
        await arm_earliest(conn, schedule_id, KIND, next_at)
    return True


async def rearm(
    engine: AsyncEngine, timer_id: int, schedule_id: str, next_at: float | None, now: float
) -> bool:
    """A timer that rang early (or for a retired entry): mark it fired and arm one at ``next_at``."""
    async with engine.begin() as conn:
        if not await claim_timer(conn, timer_id, now):
            return False
        if next_at is not None:
            await arm_earliest(conn, schedule_id, KIND, next_at)
    return True


def _row(row: Any) -> ScheduleRow:
    return ScheduleRow(
        row.id,
        row.workflow,
        row.position,
        row.fingerprint,
        row.cron,
        row.timezone,
        row.missed,
        row.next_at,
        row.last_fired_at,
        row.last_run_id,
    )
