"""A run's stored rows read back: the RunRow and EventRow records and the reads that return them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.storage.tables import events, runs, step_runs, workflow_versions
from engine.state import RunStatus, StepState, StepStatus

ACTIVE = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.COMPENSATING)
UNFINISHED = (*ACTIVE, RunStatus.WAITING)


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
    rewind_to: str | None = None  # while a rewind compensates: the step it goes back to
    load_attempts: int = 0  # takeovers since the run last made progress (see storage/leases.py)


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


class RunReads:
    """The reads of runs, steps, events and versions; part of RunStore, which supplies ``engine``."""

    engine: AsyncEngine

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
            return await read_steps(conn, run_id)

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

    async def steps_since(self, since: float) -> tuple[int, list[tuple[str, str]]]:
        """How many runs were created since ``since``, and the (digest, step id) pairs their steps have
        (few: one per step of each workflow version; no outputs are read)."""
        count = sa.select(sa.func.count()).select_from(runs).where(runs.c.created_at >= since)
        pairs = (
            sa.select(runs.c.digest, step_runs.c.step_id)
            .select_from(runs.join(step_runs, step_runs.c.run_id == runs.c.id))
            .where(runs.c.created_at >= since)
            .distinct()
        )
        async with self.engine.connect() as conn:
            total = int((await conn.execute(count)).scalar_one())
            found = [(r.digest, r.step_id) for r in (await conn.execute(pairs)).all()]
        return total, found

    async def usage_totals_since(
        self, since: float, steps: list[tuple[str, str]]
    ) -> tuple[int, int, int, int]:
        """Over the runs created since ``since``, the steps named by (digest, step id) that stored a
        ``usage`` in their outputs: (how many, prompt tokens, completion tokens, how many runs they are in),
        summed by the database."""
        if not steps:
            return 0, 0, 0, 0
        which = sa.or_(*(sa.and_(runs.c.digest == d, step_runs.c.step_id == s) for d, s in steps))
        # Materialized, so each step's outputs (an answer's text comes before its usage) are read once.
        used = (
            sa.select(step_runs.c.run_id, step_runs.c.outputs["usage"].label("usage"))
            .select_from(runs.join(step_runs, step_runs.c.run_id == runs.c.id))
            .where(runs.c.created_at >= since, which)
            .cte("used")
            .prefix_with("MATERIALIZED")
        )
        usage = used.c.usage
        query = sa.select(
            sa.func.count(usage),
            sa.func.coalesce(sa.func.sum(usage["prompt_tokens"].as_integer()), 0),
            sa.func.coalesce(sa.func.sum(usage["completion_tokens"].as_integer()), 0),
            sa.func.count(sa.distinct(used.c.run_id)),
        ).where(usage.is_not(None))
        async with self.engine.connect() as conn:
            calls, prompts, completions, in_runs = (await conn.execute(query)).one()
        return int(calls), int(prompts), int(completions), int(in_runs)

    async def count_runs(self, status: str) -> int:
        """How many runs have this status (``waiting``: parked on a timer or an approval)."""
        query = sa.select(sa.func.count()).select_from(runs).where(runs.c.status == status)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

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

    async def last_seq_of(self, run_id: str, type_: str) -> int:
        """The seq of the run's newest event of ``type_`` (0 when it has none)."""
        query = sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0)).where(
            events.c.run_id == run_id, events.c.type == type_
        )
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


async def read_run(conn: AsyncConnection, run_id: str) -> RunRow | None:
    """One run's row by its exact id, in the caller's transaction."""
    row = (await conn.execute(_select_runs().where(runs.c.id == run_id))).first()
    return _run_row(row) if row else None


async def read_steps(conn: AsyncConnection, run_id: str) -> list[StepState]:
    """Every stored step state of a run, in the caller's transaction."""
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
            revision=r.revision,
        )
        for r in rows
    ]


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
        load_attempts=r.load_attempts,
        rewind_to=r.rewind_to,
    )
