"""Step programs started and not yet seen to end: written with the step's start, read when a run resumes.

A row is added in the commit that marks a ``run`` step started (so a crash at any later point leaves it),
gets the program's pid, group and start time once it runs, and is deleted in the commit that stores the
attempt's end. Rows left when a run is loaded are the attempts a crash interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.runs import _dialect_insert as dialect_insert
from bot.storage.tables import step_processes as table

_FACTS = ("pid", "pgid", "start_ticks", "boot_id", "host", "started_at")
_KEY = sa.and_(
    table.c.run_id == sa.bindparam("_run_id"),
    table.c.step == sa.bindparam("_step"),
    table.c.attempt == sa.bindparam("_attempt"),
    table.c.compensation == sa.bindparam("_compensation"),
)


@dataclass(frozen=True)
class ProcessRow:
    """One interrupted or running step program, as recorded."""

    run_id: str
    step: str
    attempt: int
    compensation: bool
    pgid: int | None
    pid: int | None
    boot_id: str
    start_ticks: int | None
    host: str
    started_at: float


class StepProcesses:
    """The statements on ``step_processes``; writes are added to journal batches by the runtime."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # An upsert: a compensation retried with the same attempt number records over its last row.
        up = dialect_insert(engine.dialect.name)(table)
        self.insert = up.on_conflict_do_update(
            index_elements=[table.c.run_id, table.c.step, table.c.attempt, table.c.compensation],
            set_={name: up.excluded[name] for name in _FACTS},
        )
        self.started = table.update().where(_KEY).values({n: sa.bindparam(n) for n in _FACTS[:3]})
        self.delete = table.delete().where(_KEY)
        self.delete_run = table.delete().where(table.c.run_id == sa.bindparam("_run_id"))

    @staticmethod
    def key(run_id: str, step: str, attempt: int, compensation: bool) -> dict[str, Any]:
        """The parameters naming one row, for ``started`` and ``delete``."""
        return {"_run_id": run_id, "_step": step, "_attempt": attempt, "_compensation": compensation}

    async def for_run(self, run_id: str) -> list[ProcessRow]:
        """Every recorded program of the run whose end was not stored."""
        query = sa.select(table).where(table.c.run_id == run_id).order_by(table.c.started_at)
        async with self.engine.connect() as conn:
            return [ProcessRow(**row._mapping) for row in await conn.execute(query)]
