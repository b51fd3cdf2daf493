"""Runs a page at a time, newest first, for the REST API's cursor pagination, and one run's detail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.run_rows import RunRow, _run_row, _select_runs
from bot.storage.tables import approvals, events, runs, step_runs


async def page_of_runs(
    engine: AsyncEngine,
    limit: int,
    after: tuple[float, str] | None = None,
    workflow: str | None = None,
    status: str | None = None,
) -> list[RunRow]:
    """Up to ``limit`` runs older than ``after`` (created_at, id), newest first, optionally filtered."""
    query = _select_runs().order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit)
    if after is not None:
        at, run_id = after
        query = query.where(
            sa.or_(runs.c.created_at < at, sa.and_(runs.c.created_at == at, runs.c.id < run_id))
        )
    if workflow:
        query = query.where(runs.c.workflow == workflow)
    if status:
        query = query.where(runs.c.status == status)
    async with engine.connect() as conn:
        return [_run_row(r) for r in (await conn.execute(query)).all()]


@dataclass(frozen=True)
class RunDetailRows:
    """Everything the API shows of one run, read on one connection."""

    run: RunRow
    steps: list[Any]
    events: list[Any]
    approvals: list[Any]


async def run_detail(engine: AsyncEngine, run_ref: str, events_limit: int) -> RunDetailRows | None:
    """A run (by id or unique prefix) with its step rows, its first ``events_limit`` events and its approval
    requests, on one connection (each checkout costs a round trip on PostgreSQL)."""
    async with engine.connect() as conn:
        row = (await conn.execute(_select_runs().where(runs.c.id == run_ref))).first()
        if row is None and len(run_ref) >= 4:
            found = (
                await conn.execute(
                    _select_runs().where(runs.c.id.startswith(run_ref, autoescape=True)).limit(2)
                )
            ).all()
            row = found[0] if len(found) == 1 else None
        if row is None:
            return None
        run_id = row.id
        step_query = sa.select(step_runs).where(step_runs.c.run_id == run_id)
        event_query = (
            sa.select(events).where(events.c.run_id == run_id).order_by(events.c.seq).limit(events_limit)
        )
        approval_query = (
            sa.select(approvals).where(approvals.c.run_id == run_id).order_by(approvals.c.created_at)
        )
        steps = list((await conn.execute(step_query)).all())
        timeline = list((await conn.execute(event_query)).all())
        requests = list((await conn.execute(approval_query)).all())
    return RunDetailRows(_run_row(row), steps, timeline, requests)
