"""Run leases: which process works on a run (claim, renew, release) and which runs nobody works on."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.run_rows import ACTIVE
from bot.storage.tables import runs


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
        stmt = runs.update().where(runs.c.id == run_id, free).values(lease_owner=owner, lease_until=until)
        async with self.engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def renew(self, run_ids: list[str], owner: str, until: float) -> set[str]:
        """Extend our leases; returns the runs whose lease we no longer hold."""
        if not run_ids:
            return set()
        async with self.engine.begin() as conn:
            await conn.execute(
                runs.update()
                .where(runs.c.id.in_(run_ids), runs.c.lease_owner == owner)
                .values(lease_until=until)
            )
            held = (
                await conn.execute(
                    sa.select(runs.c.id).where(runs.c.id.in_(run_ids), runs.c.lease_owner == owner)
                )
            ).scalars()
            return set(run_ids) - set(held)

    async def release(self, run_id: str, owner: str) -> None:
        """Give up a lease we hold."""
        async with self.engine.begin() as conn:
            await conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    async def lease_owners(self) -> list[str]:
        """Every process currently holding a lease on an unfinished run."""
        query = sa.select(runs.c.lease_owner).where(runs.c.lease_owner.is_not(None)).distinct()
        async with self.engine.connect() as conn:
            return [r for r in (await conn.execute(query)).scalars() if r]

    async def runs_to_resume(self, owner: str, now: float, dead: list[str], limit: int = 500) -> list[str]:
        """Active runs nobody is working on: never picked up, or left behind by a dead process."""
        free = sa.or_(
            runs.c.lease_owner.is_(None),
            runs.c.lease_until < now,
            runs.c.lease_owner.in_(dead) if dead else sa.false(),
        )
        query = (
            sa.select(runs.c.id)
            .where(
                runs.c.status.in_([str(s) for s in ACTIVE]), free, runs.c.lease_owner.is_distinct_from(owner)
            )
            .order_by(runs.c.created_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars())
