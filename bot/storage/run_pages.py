"""Runs a page at a time, newest first, for the REST API's cursor pagination, and a run's approvals."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.run_rows import RunRow, _run_row, _select_runs
from bot.storage.tables import approvals, runs


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


async def approvals_of_run(engine: AsyncEngine, run_id: str) -> list[Any]:
    """Every approval request of a run, decided ones included, oldest first."""
    query = sa.select(approvals).where(approvals.c.run_id == run_id).order_by(approvals.c.created_at)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).all())
