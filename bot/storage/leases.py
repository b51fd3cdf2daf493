"""Run leases: which process works on a run (claim, renew, release) and which runs nobody works on.

A claim that takes a run from another holder (dead, or its lease lapsed) counts one more load
attempt: the run may be what crashed that process. Progress, or a graceful release, sets it back to 0.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.run_rows import ACTIVE
from bot.storage.tables import runs

RENEW_CHUNK = 500  # ids per renewal statement: bounded statements whatever the number of runs held


class RunLeases:
    """The lease columns of the runs table; part of RunStore, which supplies ``engine``."""

    engine: AsyncEngine

    async def claim(self, run_id: str, owner: str, now: float, until: float, dead: list[str]) -> bool:
        """Take the run's lease if it is free, expired, ours, or held by a process known to be dead."""
        free = sa.or_(
            runs.c.lease_owner.is_(None),
            runs.c.lease_owner == owner,
            runs.c.lease_until < now,
            runs.c.lease_owner.in_(dead) if dead else sa.false(),
        )
        taken_over = sa.and_(runs.c.lease_owner.is_not(None), runs.c.lease_owner != owner)
        attempts = sa.case((taken_over, runs.c.load_attempts + 1), else_=runs.c.load_attempts)
        stmt = (
            runs.update()
            .where(runs.c.id == run_id, free)
            .values(lease_owner=owner, lease_until=until, load_attempts=attempts)
        )
        async with self.engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

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
        """Give up a lease we hold (``crashed``: the run's task failed, which counts as a load attempt)."""
        attempts = runs.c.load_attempts + 1 if crashed else runs.c.load_attempts
        async with self.engine.begin() as conn:
            await conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None, load_attempts=attempts)
            )

    async def release_all(self, owner: str) -> int:
        """Give up every lease ``owner`` holds, at a graceful stop (which is no crash: attempts reset)."""
        async with self.engine.begin() as conn:
            done = await conn.execute(
                runs.update()
                .where(runs.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None, load_attempts=0)
            )
        return int(done.rowcount)

    async def lease_owners(self) -> list[str]:
        """Every process currently holding a lease on a run."""
        query = sa.select(runs.c.lease_owner).where(runs.c.lease_owner.is_not(None)).distinct()
        async with self.engine.connect() as conn:
            return [r for r in (await conn.execute(query)).scalars() if r]

    async def runs_held_by(self, owners: list[str]) -> list[str]:
        """The runs whose lease ``owners`` hold (the processes of a dead host's or pid's)."""
        query = sa.select(runs.c.id).where(runs.c.lease_owner.in_(owners)).order_by(runs.c.created_at)
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def runs_to_resume(
        self,
        owner: str,
        now: float,
        dead: list[str],
        after: tuple[float, str] | None = None,
        limit: int = 500,
        only: list[str] | None = None,
    ) -> list[tuple[float, str]]:
        """One page of active runs nobody works on, as (created_at, id), oldest first after ``after``
        (among ``only``, when given).

        Nobody: never picked up, left by a dead process, lapsed, or held by ``owner`` itself (a run
        this process stopped driving when it lost its database; the caller skips those it drives).
        """
        free = sa.or_(
            runs.c.lease_owner.is_(None),
            runs.c.lease_owner == owner,
            runs.c.lease_until < now,
            runs.c.lease_owner.in_(dead) if dead else sa.false(),
        )
        query = (
            sa.select(runs.c.created_at, runs.c.id)
            .where(runs.c.status.in_([str(s) for s in ACTIVE]), free)
            .order_by(runs.c.created_at, runs.c.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(sa.tuple_(runs.c.created_at, runs.c.id) > sa.tuple_(*after))
        if only is not None:
            query = query.where(runs.c.id.in_(only))
        async with self.engine.connect() as conn:
            return [(r.created_at, r.id) for r in (await conn.execute(query)).all()]
