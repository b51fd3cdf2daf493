"""Timers: every deadline is a row here (waits, retry back-offs, run timeouts, approval timeouts and
escalation rungs, conversation deadlines).

A process's alarm fires due run timers in batches, each batch one transaction (``fire_due_run_timers``:
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite) that marks them fired and posts them to
their runs. Other kinds are claimed in batches (``claim_due``), then each is fired with the one
compare-and-set (``claim_timer``) in the transaction that acts on it, so a timer fires exactly once
whichever alarm gets there. A claim lapses after the lease, so a timer claimed by a process that died is
fired by another.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.storage.tables import timers
from bot.storage.timer_bell import notify, notify_work


@dataclass(frozen=True)
class DueTimer:
    """A timer this process claimed to fire."""

    id: int
    run_id: str
    step_key: str
    kind: str
    ref: str | None
    due_at: float


async def claim_timer(conn: AsyncConnection, timer_id: int, now: float) -> bool:
    """Mark the timer fired in ``conn``'s transaction; True only for the one call that did.

    A caller acts on the timer in the same transaction, so a crash can never mark it fired without
    the action, and two processes can never both act on it.
    """
    won = await conn.execute(
        timers.update().where(timers.c.id == timer_id, timers.c.fired_at.is_(None)).values(fired_at=now)
    )
    return won.rowcount == 1


@dataclass(frozen=True)
class Kinds:
    """The timer kinds a process can fire: exact names, and name prefixes (``approval_escalate:``)."""

    names: tuple[str, ...]
    prefixes: tuple[str, ...] = ()
    run_ids: tuple[str, ...] | None = None  # a CLI client's scope: the timers of its own runs only

    def clause(self) -> sa.ColumnElement[bool]:
        kind = sa.or_(timers.c.kind.in_(self.names), *(timers.c.kind.startswith(p) for p in self.prefixes))
        return kind if self.run_ids is None else sa.and_(kind, timers.c.run_id.in_(self.run_ids))


def _claimable(now: float, kinds: Kinds) -> sa.ColumnElement[bool]:
    unclaimed = sa.or_(timers.c.claim_until.is_(None), timers.c.claim_until <= now)
    return sa.and_(timers.c.fired_at.is_(None), timers.c.due_at <= now, unclaimed, kinds.clause())


async def claim_due(
    engine: AsyncEngine, owner: str, now: float, lease: float, limit: int, kinds: Kinds
) -> list[DueTimer]:
    """Claim up to ``limit`` due timers of ``kinds`` nobody holds (or whose claim lapsed), earliest first.

    A process claims only the kinds it can fire: one without the conversation service never holds up a
    conversation's deadline.
    """
    pick = (
        sa.select(timers.c.id)
        .where(_claimable(now, kinds))
        .order_by(timers.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer at a time anyway
    )
    stmt = (
        timers.update()
        .where(timers.c.id.in_(pick.scalar_subquery()), _claimable(now, kinds))
        .values(claimed_by=owner, claim_until=now + lease)
        .returning(
            timers.c.id, timers.c.run_id, timers.c.step_key, timers.c.kind, timers.c.ref, timers.c.due_at
        )
    )
    async with engine.begin() as conn:
        rows = (await conn.execute(stmt)).all()
    found = [DueTimer(r.id, r.run_id, r.step_key, r.kind, r.ref, r.due_at) for r in rows]
    return sorted(found, key=lambda t: (t.due_at, t.id))


async def next_due_at(engine: AsyncEngine, now: float, kinds: Kinds) -> float | None:
    """When the alarm must next look: the earliest unfired timer of ``kinds``, or the earliest lapse of a
    claim on one."""
    pending = sa.and_(timers.c.fired_at.is_(None), kinds.clause())
    free = sa.or_(timers.c.claim_until.is_(None), timers.c.claim_until <= now)
    earliest_free = sa.select(sa.func.min(timers.c.due_at)).where(pending, free).scalar_subquery()
    lapsing = sa.and_(pending, timers.c.claim_until > now)
    earliest_lapse = sa.select(sa.func.min(timers.c.claim_until)).where(lapsing).scalar_subquery()
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(earliest_free, earliest_lapse))).one()
    # A claimed timer is looked at again when its claim lapses (unless it is fired before then).
    times = [t for t in (row[0], row[1]) if t is not None]
    return min(times) if times else None


async def release_claims(engine: AsyncEngine, owner: str, ids: list[int] | None = None) -> None:
    """Give up this process's claims on timers it has not fired (all, or ``ids``), so others fire them now:
    at a graceful stop, or when firing a batch failed."""
    mine = sa.and_(timers.c.claimed_by == owner, timers.c.fired_at.is_(None))
    if ids is not None:
        mine = sa.and_(mine, timers.c.id.in_(ids))
    async with engine.begin() as conn:
        await conn.execute(timers.update().where(mine).values(claimed_by=None, claim_until=None))


class RunTimers:
    """Due timers and firing run timers; part of RunStore (which supplies ``engine``, ``insert_inbox``)."""

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

    async def fire_run_timers(
        self, due: list[DueTimer], now: float, engine: AsyncEngine | None = None
    ) -> list[DueTimer]:
        """Mark run timers fired (compare-and-set) and post each to its run's inbox, in one transaction
        (through ``engine``, the alarm's own, when given); returns the timers this call fired."""
        if not due:
            return []
        ids = [t.id for t in due]
        async with (engine or self.engine).begin() as conn:
            won = set(
                (
                    await conn.execute(
                        timers.update()
                        .where(timers.c.id.in_(ids), timers.c.fired_at.is_(None))
                        .values(fired_at=now)
                        .returning(timers.c.id)
                    )
                ).scalars()
            )
            fired = [t for t in due if t.id in won]
            await self._post(conn, fired, now)
        return fired

    async def fire_due_run_timers(
        self, owner: str, now: float, limit: int, kinds: Kinds, engine: AsyncEngine | None = None
    ) -> list[DueTimer]:
        """Fire up to ``limit`` due run timers of ``kinds`` nobody holds, earliest first, in one transaction:
        each marked fired (``FOR UPDATE SKIP LOCKED``, so two alarms never take one) and posted to its run's
        inbox. A run timer needs no claim first: its firing is this one statement and the mail, so a claim
        would only add a commit to every pass of the alarm."""
        pick = (
            sa.select(timers.c.id)
            .where(_claimable(now, kinds))
            .order_by(timers.c.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            timers.update()
            .where(timers.c.id.in_(pick.scalar_subquery()), _claimable(now, kinds))
            .values(fired_at=now, claimed_by=owner)  # who fired it
            .returning(
                timers.c.id, timers.c.run_id, timers.c.step_key, timers.c.kind, timers.c.ref, timers.c.due_at
            )
        )
        async with (engine or self.engine).begin() as conn:
            rows = (await conn.execute(stmt)).all()
            fired = sorted(
                (DueTimer(r.id, r.run_id, r.step_key, r.kind, r.ref, r.due_at) for r in rows),
                key=lambda t: (t.due_at, t.id),
            )
            await self._post(conn, fired, now)
        return fired

    async def _post(self, conn: AsyncConnection, fired: list[DueTimer], now: float) -> None:
        """Each fired timer's mail to its run, and the work bell for those runs."""
        mail = [
            {
                "run_id": t.run_id,
                "kind": "timer",
                "payload": {"key": t.step_key, "kind": t.kind, "ref": t.ref},
                "created_at": now,
            }
            for t in fired
        ]
        if mail:
            await conn.execute(self.insert_inbox, mail)
            await notify_work(conn, [str(m["run_id"]) for m in mail])


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
    await notify(conn, due_at)
