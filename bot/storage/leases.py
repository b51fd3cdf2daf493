"""Run leases: which process works on a run (claim, renew, release) and which runs nobody works on.

A claim that takes a run from another holder (dead, or its lease lapsed) counts one more load
attempt: the run may be what crashed that process. Progress, or a graceful release, sets it back to 0.
Each claim says whom it took the run from, in the same statement (``Claimed.was``).

Processes share the work by claiming batches (``claim_batch``): on PostgreSQL with ``FOR UPDATE SKIP
LOCKED``, so processes claiming at once take different runs; on SQLite the single writer does the same.
A run of an exclusion group (``exclusive:``) is claimable only while no older unfinished run of its group
exists: one run of a group at a time, in the order they were started, whichever process drives it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.storage.inbox import Mail, read_mail
from bot.storage.run_rows import ACTIVE, UNFINISHED, RunRow, read_run, read_steps
from bot.storage.tables import inbox, runs
from bot.storage.timer_bell import notify_work
from engine.state import RunStatus, StepState

RENEW_CHUNK = 500  # ids per renewal statement: bounded statements whatever the number of runs held


@dataclass(frozen=True)
class Claimed:
    """A run whose lease a claim took, and who held it before (None: nobody)."""

    run_id: str
    was: str | None

    def taken_over(self, owner: str) -> bool:
        """Whether the claim took the run from another process."""
        return self.was is not None and self.was != owner


@dataclass(frozen=True)
class Loaded:
    """A run claimed with what was read in the claim's transaction (``row`` None: it is gone)."""

    claimed: Claimed
    row: RunRow | None
    steps: list[StepState]
    mail: Mail


def _free(owner: str, now: float, dead: list[str]) -> sa.ColumnElement[bool]:
    return sa.or_(
        runs.c.lease_owner.is_(None),
        runs.c.lease_owner == owner,
        runs.c.lease_until < now,
        runs.c.lease_owner.in_(dead) if dead else sa.false(),
    )


def admitted() -> sa.ColumnElement[bool]:
    """A run outside any exclusion group, already started, or the oldest unfinished run of its group."""
    older = runs.alias("older")
    ahead = (
        sa.select(older.c.id)
        .where(
            older.c.exclusive == runs.c.exclusive,
            older.c.status.in_([str(s) for s in UNFINISHED]),
            sa.or_(
                older.c.created_at < runs.c.created_at,
                sa.and_(older.c.created_at == runs.c.created_at, older.c.id < runs.c.id),
            ),
        )
        .exists()
    )
    return sa.or_(runs.c.exclusive.is_(None), runs.c.status != str(RunStatus.PENDING), ~ahead)


def _has_mail() -> sa.ColumnElement[bool]:
    mail = sa.select(inbox.c.id).where(inbox.c.run_id == runs.c.id, inbox.c.consumed_at.is_(None)).exists()
    return mail


class RunLeases:
    """The lease columns of the runs table; part of RunStore, which supplies ``engine``."""

    engine: AsyncEngine

    async def claim(
        self, run_id: str, owner: str, now: float, until: float, dead: list[str]
    ) -> Claimed | None:
        """Take the run's lease if it is free, expired, ours, or held by a process known to be dead (and,
        in an exclusion group, its turn has come); None when it is not."""
        where = sa.and_(runs.c.id == run_id, _free(owner, now, dead), admitted())
        found = await self._claim(where, owner, until, limit=1, skip_locked=False)
        return found[0] if found else None

    async def claim_loaded(
        self, run_id: str, owner: str, now: float, until: float, dead: list[str]
    ) -> Loaded | None:
        """``claim``, and in its transaction what a load reads next: the run's row, its steps and its
        unread mail (one transaction instead of four, on the path from a click to the run's next step)."""
        async with self.engine.connect() as conn:
            if conn.dialect.name != "postgresql":
                conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
            async with conn.begin():
                return await self.claim_loaded_in(conn, run_id, owner, now, until, dead)

    async def claim_loaded_in(
        self, conn: AsyncConnection, run_id: str, owner: str, now: float, until: float, dead: list[str]
    ) -> Loaded | None:
        """``claim_loaded`` in the caller's transaction (one that has written already, on SQLite)."""
        where = sa.and_(runs.c.id == run_id, _free(owner, now, dead), admitted())
        found = await self._claim_in(conn, where, owner, until, 1, skip_locked=False)
        if not found:
            return None
        row = await read_run(conn, run_id)
        steps = await read_steps(conn, run_id) if row is not None else []
        mail = await read_mail(conn, run_id) if row is not None else []
        return Loaded(found[0], row, steps, mail)

    async def claim_batch(
        self,
        owner: str,
        now: float,
        until: float,
        dead: list[str],
        limit: int,
        driving: list[str],
        only: list[str] | None = None,
    ) -> list[Claimed]:
        """Claim up to ``limit`` runs with work nobody is doing, oldest first: active runs nobody drives
        (new, left by a dead process, lapsed, or ours but not among ``driving``) and parked runs with
        mail (among ``only``, when given). Rows another process is claiming at this moment are skipped,
        not waited for."""
        work = sa.or_(runs.c.status.in_([str(s) for s in ACTIVE]), _has_mail())
        where = sa.and_(_free(owner, now, dead), work, admitted())
        if driving:
            where = sa.and_(where, runs.c.id.not_in(driving))
        if only is not None:
            where = sa.and_(where, runs.c.id.in_(only))
        return await self._claim(where, owner, until, limit, skip_locked=True)

    async def _claim(
        self, where: sa.ColumnElement[bool], owner: str, until: float, limit: int, skip_locked: bool
    ) -> list[Claimed]:
        async with self.engine.connect() as conn:
            if conn.dialect.name != "postgresql":  # SQLite: read and write under the one write lock
                conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
            async with conn.begin():
                return await self._claim_in(conn, where, owner, until, limit, skip_locked)

    async def _claim_in(
        self,
        conn: AsyncConnection,
        where: sa.ColumnElement[bool],
        owner: str,
        until: float,
        limit: int,
        skip_locked: bool,
    ) -> list[Claimed]:
        """The claim's statements, in the caller's transaction (on SQLite, one begun IMMEDIATE)."""
        picked = (
            sa.select(runs.c.id, runs.c.lease_owner.label("was"))
            .where(where)
            .order_by(runs.c.created_at, runs.c.id)
            .limit(limit)
        )
        if conn.dialect.name != "postgresql":
            found = [Claimed(r.id, r.was) for r in (await conn.execute(picked)).all()]
            if found:
                await conn.execute(self._take([c.run_id for c in found], owner, until))
            return found
        locked = picked.with_for_update(skip_locked=skip_locked, of=runs).subquery("picked")
        taken_over = sa.and_(locked.c.was.is_not(None), locked.c.was != owner)
        attempts = sa.case((taken_over, runs.c.load_attempts + 1), else_=runs.c.load_attempts)
        stmt = (
            runs.update()
            .where(runs.c.id == locked.c.id)
            .values(lease_owner=owner, lease_until=until, load_attempts=attempts)
            .returning(runs.c.id, locked.c.was)
        )
        return [Claimed(r[0], r[1]) for r in (await conn.execute(stmt)).all()]

    @staticmethod
    def _take(run_ids: list[str], owner: str, until: float) -> sa.Update:
        taken_over = sa.and_(runs.c.lease_owner.is_not(None), runs.c.lease_owner != owner)
        attempts = sa.case((taken_over, runs.c.load_attempts + 1), else_=runs.c.load_attempts)
        return (
            runs.update()
            .where(runs.c.id.in_(run_ids))
            .values(lease_owner=owner, lease_until=until, load_attempts=attempts)
        )

    async def renew(self, run_ids: list[str], owner: str, until: float) -> set[str]:
        """Extend our leases; returns the runs another process now holds.

        A run whose lease is free is not among them: it is one that released its lease as it
        parked or finished and is leaving this process.
        """
        taken: set[str] = set()
        for start in range(0, len(run_ids), RENEW_CHUNK):
            chunk = run_ids[start : start + RENEW_CHUNK]
            async with self.engine.begin() as conn:
                await conn.execute(
                    runs.update()
                    .where(runs.c.id.in_(chunk), runs.c.lease_owner == owner)
                    .values(lease_until=until)
                )
                others = sa.select(runs.c.id).where(
                    runs.c.id.in_(chunk), runs.c.lease_owner.is_not(None), runs.c.lease_owner != owner
                )
                taken.update((await conn.execute(others)).scalars())
        return taken

    async def release(self, run_id: str, owner: str, crashed: bool = False) -> None:
        """Give up a lease we hold (``crashed``: the run's task failed, which counts as a load attempt);
        the other processes hear it is free to claim."""
        attempts = runs.c.load_attempts + 1 if crashed else runs.c.load_attempts
        async with self.engine.begin() as conn:
            await conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None, load_attempts=attempts)
            )
            await notify_work(conn, [run_id])

    async def release_all(self, owner: str) -> int:
        """Give up every lease ``owner`` holds, at a graceful stop (which is no crash: attempts reset);
        the other processes hear there is work to claim."""
        async with self.engine.begin() as conn:
            done = await conn.execute(
                runs.update()
                .where(runs.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None, load_attempts=0)
            )
            if done.rowcount:
                await notify_work(conn, [])
        return int(done.rowcount)

    async def lease_owners(self) -> list[str]:
        """Every process currently holding a lease on a run."""
        query = sa.select(runs.c.lease_owner).where(runs.c.lease_owner.is_not(None)).distinct()
        async with self.engine.connect() as conn:
            return [r for r in (await conn.execute(query)).scalars() if r]
