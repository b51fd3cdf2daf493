"""Reading and writing runs: the RunStore, its prepared statements and the batches the runtime commits.

The queries live by concern: run_rows.py (reads), leases.py, inbox.py and timers.py; RunStore holds them all.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.inbox import RunInbox
from bot.storage.journal import Batch, Journal
from bot.storage.leases import RunLeases
from bot.storage.run_rows import ACTIVE, UNFINISHED, EventRow, RunReads, RunRow
from bot.storage.tables import events, inbox, runs, step_runs, timers, workflow_versions
from bot.storage.timers import RunTimers
from engine.state import RunState, StepState

STEP_COLUMNS = [c.name for c in step_runs.columns]


class RunStore(RunReads, RunLeases, RunInbox, RunTimers):
    """Run persistence; hot-path writes go through the journal, everything else directly."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.journal = Journal(engine)
        insert = _dialect_insert(engine.dialect.name)
        up = insert(step_runs)
        self.upsert_step = up.on_conflict_do_update(
            index_elements=[step_runs.c.run_id, step_runs.c.key],
            set_={name: up.excluded[name] for name in STEP_COLUMNS if name not in ("run_id", "key")},
        )
        self.insert_version = insert(workflow_versions).on_conflict_do_nothing(index_elements=["digest"])
        self.insert_run = runs.insert()
        self.insert_event = events.insert()
        self.insert_timer = timers.insert()
        self.insert_inbox = inbox.insert()
        self.update_run = (
            runs.update()
            .where(runs.c.id == sa.bindparam("_id"))
            .values(
                status=sa.bindparam("status"),
                outputs=sa.bindparam("outputs"),
                error=sa.bindparam("error"),
                failed_step=sa.bindparam("failed_step"),
                cancel_requested=sa.bindparam("cancel_requested"),
                rollback_to=sa.bindparam("rollback_to"),
                rewind_to=sa.bindparam("rewind_to"),
                updated_at=sa.bindparam("updated_at"),
                finished_at=sa.bindparam("finished_at"),
                lease_owner=sa.bindparam("lease_owner"),
                lease_until=sa.bindparam("lease_until"),
            )
        )
        self.forgive_crashes = runs.update().where(runs.c.id == sa.bindparam("_id")).values(load_attempts=0)
        self.consume_inbox = (
            inbox.update().where(inbox.c.id == sa.bindparam("_id")).values(consumed_at=sa.bindparam("at"))
        )

    # -- writes for the runtime ------------------------------------------------------------------

    def run_update(
        self, state: RunState, now: float, owner: str | None, until: float | None
    ) -> dict[str, Any]:
        """Parameters for ``update_run`` from a run's state."""
        return {
            "_id": state.run_id,
            "status": str(state.status),
            "outputs": state.outputs,
            "error": state.error,
            "failed_step": state.failed_step,
            "cancel_requested": state.cancel_requested,
            "rollback_to": state.rollback_to,
            "rewind_to": state.rewind_to,
            "updated_at": now,
            "finished_at": now if state.status.finished else None,
            "lease_owner": owner,
            "lease_until": until,
        }

    @staticmethod
    def step_row(run_id: str, step: StepState) -> dict[str, Any]:
        """A step_runs row from a step's state."""
        return {
            "run_id": run_id,
            "key": step.key,
            "step_id": step.step_id,
            "idx": step.index,
            "status": str(step.status),
            "attempt": step.attempt,
            "started_at": step.started_at,
            "finished_at": step.finished_at,
            "outputs": step.outputs,
            "error": step.error,
            "error_kind": step.error_kind,
            "tolerated": step.tolerated,
            "waiting_on": step.waiting_on,
            "wake_at": step.wake_at,
            "finish_seq": step.finish_seq,
            "compensation": step.compensation,
            "items": step.items,
            "revision": step.revision,
        }

    async def save_version(self, digest: str, name: str, path: str, source: str, now: float) -> None:
        """Store a workflow definition under its content hash (a no-op when already stored)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                self.insert_version,
                {"digest": digest, "name": name, "path": path, "source": source, "created_at": now},
            )

    def new_run(
        self,
        batch: Batch,
        state: RunState,
        digest: str,
        now: float,
        owner: str | None,
        until: float,
        exclusive: str | None = None,
    ) -> None:
        """Add the insert of a new run's row to ``batch`` (in exclusion group ``exclusive``, if any)."""
        batch.add(
            self.insert_run,
            {
                "id": state.run_id,
                "workflow": state.workflow.name,
                "digest": digest,
                "parent_run_id": state.meta.get("parent_run_id"),
                "parent_step": state.meta.get("parent_step"),
                "status": str(state.status),
                "inputs": state.inputs,
                "started_by": state.started_by,
                "meta": state.meta,
                "cancel_requested": False,
                "created_at": now,
                "updated_at": now,
                "lease_owner": owner,
                "lease_until": until,
                "exclusive": exclusive,
            },
        )


def _dialect_insert(dialect: str) -> Any:
    # Imported here: the PostgreSQL dialect costs tens of milliseconds at start-up for SQLite users.
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


__all__ = ["ACTIVE", "STEP_COLUMNS", "UNFINISHED", "EventRow", "RunRow", "RunStore"]
