"""Reading and writing runs: rows in, typed records out, and the batches the runtime commits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.journal import Batch, Journal
from bot.storage.tables import events, inbox, runs, step_runs, timers, workflow_versions
from bot.storage.timers import claim_timer
from engine.state import RunState, RunStatus, StepState, StepStatus

ACTIVE = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.COMPENSATING)
UNFINISHED = (*ACTIVE, RunStatus.WAITING)
STEP_COLUMNS = [c.name for c in step_runs.columns]


@dataclass(frozen=True)
class RunRow:
    """A run's row, for listing and status."""

    id: str
    workflow: str
    digest: str
    status: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    error: str | None
    started_by: str
    meta: dict[str, Any]
    parent_run_id: str | None
    parent_step: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    lease_owner: str | None
    event_seq: int
    cancel_requested: bool
    rollback_to: str | None
    finish_counter: int
    failed_step: str | None


@dataclass(frozen=True)
class EventRow:
    """One line of a run's timeline as stored."""

    id: int
    run_id: str
    seq: int
    type: str
    step_key: str | None
    data: dict[str, Any]
    at: float


class RunStore:
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
                updated_at=sa.bindparam("updated_at"),
                finished_at=sa.bindparam("finished_at"),
                lease_owner=sa.bindparam("lease_owner"),
                lease_until=sa.bindparam("lease_until"),
            )
        )
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
        }

    async def save_version(self, digest: str, name: str, path: str, source: str, now: float) -> None:
        """Store a workflow definition under its content hash (a no-op when already stored)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                self.insert_version,
                {"digest": digest, "name": name, "path": path, "source": source, "created_at": now},
            )

    def new_run(
        self, batch: Batch, state: RunState, digest: str, now: float, owner: str | None, until: float
    ) -> None:
        """Add the insert of a new run's row to ``batch``."""
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
            },
        )

    # -- reads -----------------------------------------------------------------------------------

    async def run_row(self, run_id: str) -> RunRow | None:
        """One run's row, by id or unique id prefix."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(_select_runs().where(runs.c.id == run_id))).first()
            if row is None and len(run_id) >= 4:
                found = (
                    await conn.execute(
                        _select_runs().where(runs.c.id.startswith(run_id, autoescape=True)).limit(2)
                    )
                ).all()
                row = found[0] if len(found) == 1 else None
        return _run_row(row) if row else None

    async def source_of(self, digest: str) -> tuple[str, str]:
        """The stored workflow text and path for a content hash."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(workflow_versions.c.source, workflow_versions.c.path).where(
                        workflow_versions.c.digest == digest
                    )
                )
            ).one()
        return row.source, row.path

    async def step_rows(self, run_id: str) -> list[StepState]:
        """Every stored step state of a run."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(step_runs).where(step_runs.c.run_id == run_id))).all()
        return [
            StepState(
                key=r.key,
                step_id=r.step_id,
                index=r.idx,
                status=StepStatus(r.status),
                attempt=r.attempt,
                started_at=r.started_at,
                finished_at=r.finished_at,
                outputs=r.outputs,
                error=r.error,
                error_kind=r.error_kind,
                tolerated=r.tolerated,
                waiting_on=r.waiting_on,
                wake_at=r.wake_at,
                finish_seq=r.finish_seq,
                compensation=r.compensation,
                items=r.items,
            )
            for r in rows
        ]

    async def list_runs(
        self, limit: int = 20, status: str | None = None, workflow: str | None = None
    ) -> list[RunRow]:
        """The newest runs, optionally filtered."""
        query = _select_runs().order_by(runs.c.created_at.desc()).limit(limit)
        if status:
            query = query.where(runs.c.status == status)
        if workflow:
            query = query.where(runs.c.workflow == workflow)
        async with self.engine.connect() as conn:
            return [_run_row(r) for r in (await conn.execute(query)).all()]

    async def events_after(self, run_id: str, after_seq: int = 0, limit: int = 1000) -> list[EventRow]:
        """A run's events with seq greater than ``after_seq``, oldest first."""
        query = (
            sa.select(events)
            .where(events.c.run_id == run_id, events.c.seq > after_seq)
            .order_by(events.c.seq)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [EventRow(r.id, r.run_id, r.seq, r.type, r.step_key, r.data, r.at) for r in rows]

    # -- leases ------------------------------------------------------------------------------------

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

    # -- inbox and timers --------------------------------------------------------------------------

    async def post(self, run_id: str, kind: str, payload: dict[str, Any], now: float) -> None:
        """Leave a signal for a run, to be applied by whichever process runs it."""
        async with self.engine.begin() as conn:
            await conn.execute(
                self.insert_inbox, {"run_id": run_id, "kind": kind, "payload": payload, "created_at": now}
            )

    async def inbox_for(self, run_id: str, after_id: int = 0) -> list[tuple[int, str, dict[str, Any]]]:
        """A run's unconsumed signals, oldest first."""
        query = (
            sa.select(inbox.c.id, inbox.c.kind, inbox.c.payload)
            .where(inbox.c.run_id == run_id, inbox.c.consumed_at.is_(None), inbox.c.id > after_id)
            .order_by(inbox.c.id)
        )
        async with self.engine.connect() as conn:
            return [(r.id, r.kind, r.payload) for r in (await conn.execute(query)).all()]

    async def runs_with_mail(self) -> list[str]:
        """Runs that have unconsumed signals."""
        query = sa.select(inbox.c.run_id).where(inbox.c.consumed_at.is_(None)).distinct()
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def timers_due_before(self, moment: float) -> list[tuple[int, float, str, str | None]]:
        """Unfired timers due before ``moment``: (id, due_at, kind, ref)."""
        query = (
            sa.select(timers.c.id, timers.c.due_at, timers.c.kind, timers.c.ref)
            .where(timers.c.fired_at.is_(None), timers.c.due_at <= moment)
            .order_by(timers.c.due_at)
        )
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


def _dialect_insert(dialect: str) -> Any:
    # Imported here: the PostgreSQL dialect costs tens of milliseconds at start-up for SQLite users.
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _select_runs() -> sa.Select[Any]:
    """Run rows with the two counters derived from their events and steps (never stored twice)."""
    last_seq = (
        sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0)).where(events.c.run_id == runs.c.id)
    ).scalar_subquery()
    finished = (
        sa.select(sa.func.coalesce(sa.func.max(step_runs.c.finish_seq), 0)).where(
            step_runs.c.run_id == runs.c.id
        )
    ).scalar_subquery()
    return sa.select(runs, last_seq.label("event_seq"), finished.label("finish_counter"))


def _run_row(r: Any) -> RunRow:
    return RunRow(
        id=r.id,
        workflow=r.workflow,
        digest=r.digest,
        status=r.status,
        inputs=r.inputs,
        outputs=r.outputs,
        error=r.error,
        started_by=r.started_by,
        meta=r.meta,
        parent_run_id=r.parent_run_id,
        parent_step=r.parent_step,
        created_at=r.created_at,
        updated_at=r.updated_at,
        finished_at=r.finished_at,
        lease_owner=r.lease_owner,
        event_seq=r.event_seq,
        cancel_requested=bool(r.cancel_requested),
        rollback_to=r.rollback_to,
        finish_counter=r.finish_counter,
        failed_step=r.failed_step,
    )
