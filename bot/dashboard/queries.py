"""The reads the dashboard makes: a page of runs with filters, and one run's approvals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.tables import approval_votes, approvals, chat_cards, runs

PAGE_SIZE = 25


@dataclass(frozen=True)
class RunLine:
    """One line of the runs list."""

    id: str
    workflow: str
    status: str
    started_by: str
    created_at: float
    finished_at: float | None


@dataclass(frozen=True)
class RunsPage:
    lines: list[RunLine]
    page: int
    more: bool  # a next page exists
    workflows: list[str]  # every workflow with a run, for the filter


@dataclass(frozen=True)
class ApprovalLine:
    """An approval request of a run, with its votes."""

    step_key: str
    status: str
    title: str
    approvers: list[str]
    required: int
    created_at: float
    expires_at: float | None
    votes: list[tuple[str, str, str | None]]  # actor, decision, comment


@dataclass(frozen=True)
class RunFilter:
    """What the runs list is narrowed to; None is any."""

    status: str | None = None
    workflow: str | None = None
    by: str | None = None  # an identity ref (``slack:U0123``) or a console user's name (``alice``)
    since: float | None = None  # started at or after


# What a line of a runs list reads (RunLine).
LINE_COLUMNS = (
    runs.c.id,
    runs.c.workflow,
    runs.c.status,
    runs.c.started_by,
    runs.c.meta,
    runs.c.created_at,
    runs.c.finished_at,
)


async def runs_page(engine: AsyncEngine, page: int, only: RunFilter, size: int = PAGE_SIZE) -> RunsPage:
    """Runs newest first, ``size`` a page (``page`` counts from 1), narrowed by ``only``."""
    query = sa.select(*LINE_COLUMNS).order_by(runs.c.created_at.desc(), runs.c.id)
    if only.status:
        query = query.where(runs.c.status == only.status)
    if only.workflow:
        query = query.where(runs.c.workflow == only.workflow)
    if only.by:
        query = query.where(sa.or_(runs.c.started_by == only.by, runs.c.started_by == f"console:{only.by}"))
    if only.since is not None:
        query = query.where(runs.c.created_at >= only.since)
    query = query.offset((page - 1) * size).limit(size + 1)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
        names = (await conn.execute(sa.select(runs.c.workflow).distinct().order_by(runs.c.workflow))).all()
    lines = [
        RunLine(r.id, r.workflow, r.status, who_started(r.meta, r.started_by), r.created_at, r.finished_at)
        for r in rows[:size]
    ]
    return RunsPage(lines, page, len(rows) > size, [n.workflow for n in names])


async def run_approvals(engine: AsyncEngine, run_id: str) -> list[ApprovalLine]:
    """A run's approval requests, oldest first, each with its votes."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(approvals).where(approvals.c.run_id == run_id).order_by(approvals.c.created_at)
            )
        ).all()
        ids = [r.id for r in rows]
        votes = (
            (
                await conn.execute(
                    sa.select(approval_votes)
                    .where(approval_votes.c.approval_id.in_(ids))
                    .order_by(approval_votes.c.at)
                )
            ).all()
            if ids
            else []
        )
    by_request: dict[str, list[tuple[str, str, str | None]]] = {}
    for v in votes:
        by_request.setdefault(v.approval_id, []).append((v.actor, v.decision, v.comment))
    return [
        ApprovalLine(
            r.step_key,
            r.status,
            r.title,
            list(r.approvers),
            r.required,
            r.created_at,
            r.expires_at,
            by_request.get(r.id, []),
        )
        for r in rows
    ]


def who_started(meta: Any, started_by: str) -> str:
    """The starter's display name when the run recorded one, else their identity ref."""
    who = meta.get("who") if isinstance(meta, dict) else None
    name = who.get("name") if isinstance(who, dict) else None
    return str(name) if name else started_by


async def card_message(engine: AsyncEngine, run_id: str) -> str | None:
    """The platform's ref of a run's status card once it is posted (Slack ``channel:ts``), else None."""
    async with engine.connect() as conn:
        found = await conn.scalar(
            sa.select(chat_cards.c.message_ref).where(chat_cards.c.key == f"run:{run_id}")
        )
    return str(found) if found else None


async def run_workflows(engine: AsyncEngine, run_ids: list[str]) -> dict[str, str]:
    """The workflow of each run id."""
    if not run_ids:
        return {}
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(runs.c.id, runs.c.workflow).where(runs.c.id.in_(run_ids)))).all()
    return {r.id: r.workflow for r in rows}


async def vote_counts(engine: AsyncEngine, approval_ids: list[str]) -> dict[str, int]:
    """How many approving votes each request has."""
    if not approval_ids:
        return {}
    query = (
        sa.select(approval_votes.c.approval_id, sa.func.count())
        .where(approval_votes.c.approval_id.in_(approval_ids), approval_votes.c.decision == "approve")
        .group_by(approval_votes.c.approval_id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {r[0]: int(r[1]) for r in rows}


@dataclass(frozen=True)
class Asks:
    """What a request asks beyond yes or no: a form approval's typed fields; whether changes may be asked."""

    form: dict[str, Any] | None
    can_revise: bool


async def request_asks(engine: AsyncEngine, approval_ids: list[str]) -> dict[str, Asks]:
    """Each request's form (a form approval's fields) and whether it takes a request for changes."""
    if not approval_ids:
        return {}
    query = sa.select(approvals.c.id, approvals.c.kind, approvals.c.form, approvals.c.can_revise).where(
        approvals.c.id.in_(approval_ids)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {r.id: Asks(r.form if r.kind == "form" else None, bool(r.can_revise)) for r in rows}


async def recent_runs(engine: AsyncEngine, workflow: str, limit: int) -> list[RunLine]:
    """A workflow's newest runs, newest first."""
    query = (
        sa.select(*LINE_COLUMNS)
        .where(runs.c.workflow == workflow)
        .order_by(runs.c.created_at.desc(), runs.c.id)
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        RunLine(r.id, r.workflow, r.status, who_started(r.meta, r.started_by), r.created_at, r.finished_at)
        for r in rows
    ]
